"""python manage.py ingest [--share GROUP] [--name NAME]: the long-running ingest worker."""

from __future__ import annotations

import logging
import signal

import paho.mqtt.client as mqtt
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from edge_node.services import ingest_broker_url
from ingest.metrics import start_ingest_ops
from ingest.worker import IngestWorker, default_client_id
from web.broker_probe import BrokerCertificateError, probe_broker_tls
from web.gc_tuning import freeze_startup_heap

log = logging.getLogger("ingest")


class Command(BaseCommand):
    help = "Subscribe to the v1 telemetry, events and status topics and store what arrives."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--share", metavar="GROUP", help="join MQTT shared subscription $share/GROUP/... to split one stream over workers")
        parser.add_argument("--name", default="main", help="this worker's name; with the host it makes the persistent MQTT client id")
        parser.add_argument("--client-id", help="explicit MQTT client id (overrides --name)")
        parser.add_argument("--mqtt-url", default=None, help="broker URL (default: MQTT_URL)")
        parser.add_argument("--protocol", choices=["5", "3.1.1"], default=None, help="MQTT version (default 5; 3.1.1 for the embedded broker)")
        parser.add_argument("--no-live", action="store_true", help="do not send live updates to the channel layer")
        parser.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on 127.0.0.1:PORT/metrics")

    def handle(self, *args, **opts) -> None:
        protocol = opts["protocol"] or ("3.1.1" if settings.MQTT_EMBEDDED else "5")
        try:
            probe_broker_tls(opts["mqtt_url"] or settings.MQTT_URL, settings.MQTT_CA_FILE)
        except BrokerCertificateError as exc:
            raise CommandError(str(exc)) from None
        worker = IngestWorker(
            # MQTT_URL with the ingest account's password (which may come from MQTT_INGEST_PASSWORD_FILE)
            broker_url=opts["mqtt_url"] or ingest_broker_url(),
            client_id=opts["client_id"] or default_client_id(opts["name"], opts["share"]),
            share_group=opts["share"],
            protocol=mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311,
            live=not opts["no_live"],
        )

        def on_signal(signum, frame) -> None:
            log.info("signal %s: finishing the current batch and stopping", signum)
            worker.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        log.info("ingest worker %s starting (broker %s:%s)", worker.client_id, worker.address.host, worker.address.port)
        heartbeat = start_ingest_ops(worker, opts["name"], opts["metrics_port"])
        freeze_startup_heap()
        try:
            worker.run()
        finally:
            heartbeat.stop()
