"""python manage.py simulate_fleet: the registered edge nodes as simulated agents, over real MQTT."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from edge_node.agent.config import ConfigError
from edge_node.agent.fleet import run_fleet
from edge_node.fleet_runner import fleet_layout


class Command(BaseCommand):
    help = "Run every registered edge node (or --node ones) as a simulated agent until Ctrl-C."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--mqtt-url", default=None, help="broker URL (default: MQTT_URL)")
        parser.add_argument("--node", action="append", help="only this node id (repeatable)")
        parser.add_argument("--speedup", type=float, default=1.0, help="simulated time per wall second")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples of each asset")
        parser.add_argument("--duration", type=float, default=None, help="stop after this many wall seconds")
        parser.add_argument("--format", choices=["json", "msgpack"], default="json")
        parser.add_argument("--issue-credentials", action="store_true",
                            help="give the simulated nodes fresh MQTT passwords first (stored hashed; broker files rewritten when configured)")

    def handle(self, *args, **opts) -> None:
        credentials = None
        if opts["issue_credentials"]:
            from edge_node.services import issue_fleet_credentials

            credentials = issue_fleet_credentials([n.node_id for n in fleet_layout(opts["node"])], actor="manage.py simulate_fleet")
        nodes = fleet_layout(opts["node"], credentials, with_models=credentials is not None)
        if not nodes:
            raise CommandError("no edge nodes with simulated assets are registered (run manage.py load_demo)")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        self.stdout.write(f"simulating {len(nodes)} nodes, {sum(len(n.assets) for n in nodes)} assets; Ctrl-C stops")
        try:
            report = run_fleet(
                nodes, opts["mqtt_url"] or settings.MQTT_URL, Path(settings.VAR_DIR) / "fleet", speedup=opts["speedup"],
                stop_event=stop, publish_interval_s=opts["interval"], duration_s=opts["duration"], payload_format=opts["format"],
            )
        except ConfigError as exc:
            raise CommandError(str(exc)) from exc
        for node in report.nodes:
            self.stdout.write(f"{node.node_id}: {node.readings_sent} readings in {node.batches} batches, {node.events} events, buffered {node.buffer_depth}, dropped {node.dropped}")
