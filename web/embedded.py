"""The embedded default in one process: MQTT broker, ingest worker, Celery worker, simulated
fleet and the daphne web server, sharing the in-memory channel layer.

``make demo`` runs this through ``manage.py run_embedded``. Ctrl-C (or SIGTERM) stops the web
server, then every component it started, in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from django.conf import settings
from django.db import close_old_connections

from ingest import group_sender

log = logging.getLogger(__name__)


@dataclass
class Component:
    name: str
    stop: Callable[[], None]
    thread: threading.Thread | None = None


@dataclass
class EmbeddedStack:
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    mqtt_port: int = settings.MQTT_EMBEDDED_PORT
    fleet: bool = True
    fleet_speedup: float = 1.0
    components: list[Component] = field(default_factory=list)

    def start_background(self) -> None:
        """Start everything but the web server (which runs in the calling thread)."""
        # The ASGI app is imported first, before the broker, ingest and fleet threads compete
        # for the interpreter: once the banner is printed the web server listens moments later.
        import web.asgi  # noqa: F401

        self.use_broker_port()
        if settings.MQTT_EMBEDDED:
            from web.embedded_broker import EmbeddedBroker

            broker = EmbeddedBroker(port=self.mqtt_port)
            broker.start()
            self.components.append(Component("mqtt broker", broker.stop))
        self._start_ingest()
        if settings.CELERY_EMBEDDED:
            self._start_celery()
        self._start_twin_refresh()
        self._start_maintenance()
        self._start_rollout_listener()
        self._start_notify_sweep()
        if self.fleet:
            self._start_fleet()
        from web.heartbeats import EMBEDDED, Heartbeat

        heartbeat = Heartbeat(EMBEDDED, "demo").start()
        self.components.append(Component("heartbeat", heartbeat.stop))

    def use_broker_port(self) -> None:
        """Everything in this process that reads MQTT_URL (the rollout task, the broker URL handed
        to enrolling nodes) must reach the embedded broker on the port it really runs on."""
        if settings.MQTT_EMBEDDED:
            settings.MQTT_EMBEDDED_PORT = self.mqtt_port
            settings.MQTT_URL = f"mqtt://127.0.0.1:{self.mqtt_port}"

    def broker_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}" if settings.MQTT_EMBEDDED else settings.MQTT_URL

    def ingest_broker_url(self) -> str:
        """The embedded broker refuses anonymous clients: the ingest uses its service account."""
        if not settings.MQTT_EMBEDDED:
            return settings.MQTT_URL
        from urllib.parse import quote

        user, password = quote(settings.MQTT_INGEST_USERNAME, safe=""), quote(settings.MQTT_INGEST_PASSWORD, safe="")
        return f"mqtt://{user}:{password}@127.0.0.1:{self.mqtt_port}"

    def _thread(self, name: str, target: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                target()
            except Exception:
                log.exception("%s stopped with an error", name)
            finally:
                close_old_connections()

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        return thread

    def _start_ingest(self) -> None:
        from ingest.worker import IngestWorker, default_client_id

        worker = IngestWorker(
            broker_url=self.ingest_broker_url(),
            client_id=default_client_id("embedded", None),
            protocol=mqtt.MQTTv311 if settings.MQTT_EMBEDDED else mqtt.MQTTv5,
        )
        from ingest.metrics import register_worker

        register_worker(worker, "embedded")  # the demo's /metrics shows the ingest counters too (one process)
        thread = self._thread("ingest", worker.run)
        self.components.append(Component("ingest worker", worker.stop, thread))

    def _start_celery(self) -> None:
        from celery.worker import WorkController

        from web.celery import app

        controller = WorkController(
            app=app, pool_cls="threads", concurrency=2, hostname="embedded@localhost",
            without_heartbeat=True, without_mingle=True, without_gossip=True,
        )
        thread = self._thread("celery", controller.start)
        self.components.append(Component("celery worker", lambda: controller.stop(in_sighandler=False), thread))

    def _start_twin_refresh(self) -> None:
        # Twins: periodic refresh on its own thread (never inside the ingest worker); demo RUL
        # models missing at start are trained in a niced subprocess first (TWIN_TRAIN_DEMO_MODELS),
        # only when the simulated fleet runs.
        from twins.twin_runner import start_refresher

        # The simulated fleet stamps readings with wall-clock time while its sim time runs
        # fleet_speedup times faster: the twins read its telemetry at that scale.
        refresher, thread = start_refresher(
            train_demo_models=self.fleet and settings.TWIN_TRAIN_DEMO_MODELS, time_scale=self.fleet_speedup if self.fleet else 1.0,
        )
        self.components.append(Component("twin refresh", refresher.stop, thread))

    def _start_maintenance(self) -> None:
        """What celery beat's ``ingest.maintain`` does in production: every MAINTENANCE_INTERVAL_S."""
        from ingest.maintenance import run_maintenance

        stopping = threading.Event()

        def loop() -> None:
            while not stopping.wait(settings.MAINTENANCE_INTERVAL_S):
                try:
                    run_maintenance()
                except Exception:  # noqa: BLE001 - the next interval tries again
                    log.exception("maintenance failed; next try in %.0f s", settings.MAINTENANCE_INTERVAL_S)
                finally:
                    close_old_connections()

        thread = self._thread("maintenance", loop)
        self.components.append(Component("maintenance", stopping.set, thread))

    def _start_rollout_listener(self) -> None:
        """Node replies and status drive rollouts (in production: manage.py rollout_listener)."""
        import os

        from edge_node.rollouts.listener import start_listener_thread

        if "PLATFORM_PUBLIC_URL" not in os.environ:  # nodes download artifacts from this server
            settings.PLATFORM_PUBLIC_URL = f"http://{self.http_host}:{self.http_port}"
        thread, stop, client = start_listener_thread(self.broker_url())

        def stop_listener() -> None:
            stop.set()
            thread.join(timeout=10)
            client.stop()

        self.components.append(Component("rollout listener", stop_listener))

    def _start_notify_sweep(self) -> None:
        from notify.sweeper import start_sweeper

        stop, thread = start_sweeper()
        self.components.append(Component("notification sweep", stop.set, thread))

    def _start_fleet(self) -> None:
        from edge_node.fleet_history import backfill
        from edge_node.fleet_runner import start_fleet
        from edge_node.models import EdgeNode
        from edge_node.services import issue_fleet_credentials

        # The fleet's past since it last ran (a week at most), so charts and twins have history.
        backfill()
        # The simulated nodes log in like real ones: fresh MQTT passwords and HTTP secrets,
        # stored hashed; with them they take model rollouts through the agent's deploy path.
        credentials = issue_fleet_credentials(list(EdgeNode.objects.filter(revoked_at__isnull=True).values_list("node_id", flat=True)))
        stop = start_fleet(self.broker_url(), speedup=self.fleet_speedup, credentials=credentials)
        self.components.append(Component("simulated fleet", stop))

    def stop_all(self) -> None:
        for component in reversed(self.components):
            log.info("stopping %s", component.name)
            try:
                component.stop()
            except Exception:
                log.exception("stopping %s failed", component.name)
            if component.thread is not None:
                component.thread.join(timeout=10)
        self.components.clear()

    def serve_forever(self, on_listening: Callable[[], None] | None = None) -> None:
        """Run daphne until stopped; `on_listening` is called once its port accepts connections."""
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        from web.asgi import application

        server = Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=self.http_host, port=self.http_port),
            signal_handlers=True,
            verbosity=0,
            ready_callable=on_listening,
        )
        from twisted.internet import reactor

        # The ingest, twin and Celery threads send their group messages on daphne's own loop:
        # the in-memory channel layer is only safe (and only wakes the sockets) from there.
        reactor.callLater(0, lambda: group_sender.use_loop(asyncio.get_running_loop()))
        try:
            server.run()
        finally:
            group_sender.use_loop(None)
