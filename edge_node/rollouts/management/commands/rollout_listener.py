from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from edge_node.rollouts.listener import RolloutListener
from edge_node.rollouts.mqtt_client import PlatformMqtt
from edge_node.services import platform_broker_url
from web import heartbeats, metrics
from web.broker_probe import BrokerCertificateError, probe_broker_tls


class Command(BaseCommand):
    help = "Drive model rollouts: receive nodes' cmd/ack and status, send deploy/rollback commands (runs until SIGTERM)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--mqtt-url", default=None, help="broker URL (default MQTT_URL with the platform account)")
        parser.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on 127.0.0.1:PORT/metrics")

    def handle(self, *args, **opts) -> None:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        try:
            probe_broker_tls(opts["mqtt_url"] or settings.MQTT_URL, settings.MQTT_CA_FILE)
        except BrokerCertificateError as exc:
            raise CommandError(str(exc)) from None
        client = PlatformMqtt(platform_broker_url(opts["mqtt_url"]), subscribe=True).start()
        self.stdout.write("rollout listener running")
        metrics.watch_mqtt("rollout-listener", client.connected.is_set)
        heartbeat = metrics.start_process_ops(heartbeats.LISTENER, "main", opts["metrics_port"])
        try:
            RolloutListener(client).run(stop)
        finally:
            heartbeat.stop()
            client.stop()
