"""Fault benchmark: a steady stream from the project's agents while the broker, the ingest
worker and the database crash, one after the other. Nothing may be lost or stored twice.

Everything runs here, private to the run: a Mosquitto with the shipped broker settings
(deploy/mosquitto/aiot.conf), a PostgreSQL cluster of its own (initdb in a temporary folder),
the real ingest worker as its own process (``manage.py ingest``), and a fleet of simulated
edge agents (the real agent code: outbox, confirmations, re-sends) in this process.

Timeline (seconds after the stream starts, ``--scale`` stretches it):
  broker kill -9 at 15, restarted 2 s later;
  worker kill -9 at 40, restarted 2 s later;
  database crash (pg_ctl stop -m immediate) at 65, restarted 5 s later;
  agents stop at 95 (they deliver what they hold), then the database is checked.

Counted in the database: readings stored (distinct (time, asset)), duplicates (rows beyond
distinct (time, asset, metric)), against the readings the agents produced. ``recovery_s``:
per fault, from the fault until every batch produced before the service came back is stored.
Worker crashes are exits of the worker that the benchmark did not cause.

Last line JSON: {"sent", "stored", "lost", "duplicates", "worker_crashes", "recovery_s", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import PrivateMosquitto, PrivatePostgres  # noqa: E402

NODES = 10
TYPES = ("induction_motor", "centrifugal_pump", "hvac_unit")


class WorkerProcess:
    """The ingest worker as its own process, restarted when it exits by itself (counted)."""

    def __init__(self, env: dict[str, str], client_id: str, log_path: Path) -> None:
        self.env, self.client_id, self.log_path = env, client_id, log_path
        self.proc: subprocess.Popen | None = None
        self.crashes = 0
        self.expected_exit = False
        self._watch = True
        self.start()
        threading.Thread(target=self._watchdog, daemon=True).start()

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "ingest", "--client-id", self.client_id, "--protocol", "5", "--no-live"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        self.expected_exit = False

    def kill9(self) -> None:
        self.expected_exit = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def _watchdog(self) -> None:
        while self._watch:
            if self.proc.poll() is not None and not self.expected_exit:
                self.crashes += 1
                print(f"  the ingest worker exited by itself (code {self.proc.returncode}); restarting it", flush=True)
                self.start()
            time.sleep(0.2)

    def stop(self) -> None:
        self._watch = False
        self.expected_exit = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def setup_platform(database_url: str) -> list:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    import logging

    from django.core.management import call_command

    logging.getLogger("edge_node").setLevel(logging.WARNING)  # 10 agents saying "stopped"

    call_command("migrate", verbosity=0)
    from edge_node.agent.fleet import AssetSpec, NodeSpec
    from edge_node.models import EdgeNode
    from twins.models import Asset, Site
    from web.demo import sync_asset_types

    types = sync_asset_types()
    site = Site.objects.create(key="faults", name="Fault bench")
    specs = []
    for n in range(NODES):
        node = EdgeNode.objects.create(node_id=f"faults-{n}", site=site)
        assets = [
            Asset.objects.create(key=f"faults-{n}-{t}", name=f"{t} {n}", site=site, asset_type=types[t], node=node)
            for t in TYPES
        ]
        specs.append(NodeSpec(node.node_id, assets=[AssetSpec(a.key, a.asset_type.key, seed=a.pk) for a in assets]))
    return specs


def query(sql: str, params=None, retry_s: float = 120.0):
    """One query; while the database is down (it crashes on purpose), wait and try again."""
    from django.db import InterfaceError, OperationalError, close_old_connections, connection

    deadline = time.monotonic() + retry_s
    while True:
        try:
            with connection.cursor() as cur:
                cur.execute(sql, params or [])
                return cur.fetchall()
        except (OperationalError, InterfaceError):
            if time.monotonic() > deadline:
                raise
            close_old_connections()
            connection.close()
            time.sleep(0.2)


def streams() -> dict[str, tuple[int, int, int]]:
    rows = query("SELECT node_key, COALESCE(first_seq, 0), COALESCE(max_seq, 0), messages FROM ingest_nodestream")
    return {node: (first, last, messages) for node, first, last, messages in rows}


def stored_through(targets: dict[str, int]) -> bool:
    """Every node's batches up to its target seq stored, with no gap."""
    got = streams()
    for node, target in targets.items():
        first, last, messages = got.get(node, (0, 0, 0))
        if last < target or messages < last - first + 1:
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="stretch the timeline (0.5 = half as long)")
    parser.add_argument("--publish-interval", type=float, default=0.2, help="seconds between an agent's batches")
    args = parser.parse_args()
    at = {k: v * args.scale for k, v in {"broker": 15, "worker": 40, "database": 65, "end": 95}.items()}

    workdir = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    pg = PrivatePostgres()
    pg.init()
    pg.start()
    broker = PrivateMosquitto(workdir / "broker")
    broker.start()
    database_url = pg.url
    specs = setup_platform(database_url)
    env = dict(os.environ, DATABASE_URL=database_url, MQTT_URL=broker.url, LOG_LEVEL="WARNING", INGEST_DB_WAIT_MAX_S="2")
    env.pop("REDIS_URL", None)
    worker = WorkerProcess(env, "bench-faults-ingest", workdir / "ingest.log")

    from edge_node.agent.fleet import Fleet

    fleet = Fleet(specs, broker.url, workdir / "fleet", publish_interval_s=args.publish_interval, heartbeat_interval_s=5.0)
    recovery: dict[str, float] = {}
    faults: list[tuple[str, float, dict[str, int]]] = []  # (fault, started at, targets: last seq produced when back)

    def produced() -> dict[str, int]:
        return {node: agent.outbox.last_seq("telemetry") for node, agent in fleet.agents.items()}

    watching = threading.Event()
    watching.set()

    def watch_recovery() -> None:
        """For each fault once its service is back: when is everything produced until then stored?"""
        from django.db import connection

        try:
            while watching.is_set():
                for name, began, targets in list(faults):
                    if name not in recovery and stored_through(targets):
                        recovery[name] = round(time.monotonic() - began, 1)
                        print(f"{time.monotonic() - t0:6.1f} s  recovered from {name} in {recovery[name]} s", flush=True)
                time.sleep(0.2)
        finally:
            connection.close()

    time.sleep(2.0)  # the worker connects and subscribes
    t0 = time.monotonic()
    fleet.start()
    watcher = threading.Thread(target=watch_recovery, daemon=True)
    watcher.start()
    print(f"stream: {NODES} agents x {len(TYPES)} assets, a batch every {args.publish_interval} s each", flush=True)

    def wait_for(t: float) -> None:
        while time.monotonic() - t0 < t:
            time.sleep(0.05)

    try:
        wait_for(at["broker"])
        began = time.monotonic()
        broker.kill9()
        print(f"{began - t0:6.1f} s  broker: kill -9", flush=True)
        time.sleep(2.0)
        broker.start()
        faults.append(("broker_kill9", began, produced()))

        wait_for(at["worker"])
        began = time.monotonic()
        worker.kill9()
        print(f"{began - t0:6.1f} s  ingest worker: kill -9", flush=True)
        time.sleep(2.0)
        worker.start()
        faults.append(("worker_kill9", began, produced()))

        wait_for(at["database"])
        began = time.monotonic()
        pg.crash()
        print(f"{began - t0:6.1f} s  database: crash (immediate stop)", flush=True)
        time.sleep(5.0)
        pg.start()
        faults.append(("database_restart", began, produced()))

        wait_for(at["end"])
        report = fleet.stop()
        print(f"{time.monotonic() - t0:6.1f} s  agents stopped; {report.readings_sent:,} readings in "
              f"{sum(n.batches for n in report.nodes):,} batches produced", flush=True)
        batches = {n.node_id: n.batches for n in report.nodes}
        deadline = time.monotonic() + 120
        while not stored_through(batches) and time.monotonic() < deadline:
            time.sleep(0.2)
        while len(recovery) < len(faults) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        watching.clear()
        worker.stop()
        broker.stop()

    for name, _began, _targets in faults:
        recovery.setdefault(name, None)  # never recovered: shown as null
    ids = [a for (a,) in query("SELECT id FROM twins_asset WHERE key LIKE 'faults-%%'")]
    marks = ", ".join(["%s"] * len(ids))
    total = query(f"SELECT COUNT(*) FROM ingest_telemetry WHERE asset_id IN ({marks})", ids)[0][0]
    distinct_values = query(f"SELECT COUNT(*) FROM (SELECT DISTINCT time, asset_id, metric_id FROM ingest_telemetry WHERE asset_id IN ({marks})) d", ids)[0][0]
    stored = query(f"SELECT COUNT(*) FROM (SELECT DISTINCT time, asset_id FROM ingest_telemetry WHERE asset_id IN ({marks})) d", ids)[0][0]
    resent = sum(a.stats.resent for a in fleet.agents.values())
    dropped = sum(n.dropped for n in report.nodes)
    sent = report.readings_sent
    result = {
        "sent": sent,
        "stored": stored,
        "lost": sent - stored,
        "duplicates": total - distinct_values,
        "worker_crashes": worker.crashes,
        "recovery_s": recovery,
        "batches": sum(batches.values()),
        "agent_resends": resent,
        "agent_dropped": dropped,
    }
    print(f"sent {sent:,} readings, stored {stored:,}, lost {result['lost']}, duplicates {result['duplicates']}, "
          f"worker crashes {worker.crashes}; recovery: {recovery}; agents re-sent {resent} messages", flush=True)
    from django.db import connections

    connections.close_all()
    pg.remove()
    print(json.dumps(result))



if __name__ == "__main__":
    main()
