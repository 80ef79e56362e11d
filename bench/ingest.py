"""Ingest benchmark: MQTT -> ingest worker -> PostgreSQL, against two baselines in one run.

1. end-to-end: a fixed number of readings in batched messages (100 readings of 4 metrics
   each) published with QoS 1 through a Mosquitto started for the run, stored by the real
   ingest worker (``manage.py ingest``, a separate process); points/s counted in the database.
   The worker confirms every stored seq to its node (end-to-end delivery) and the publisher
   receives the confirmations, as agents do; a second run with ``INGEST_CONFIRM=0`` gives
   the cost of the confirmations.
2. ceiling: the same rows by binary COPY from ready tuples in 10,000-row batches, no MQTT.
3. naive baseline: a paho callback doing one ORM insert per reading (the tutorial pattern).

Prints the figures; the last line is JSON. Needs PostgreSQL (BENCH_PG_URL, default
postgres://postgres@127.0.0.1:5432/postgres: a scratch database is created and dropped)
and the mosquitto binary.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DB_NAME = "aiot_bench_ingest"
NODES, ASSETS_PER_NODE, METRICS = 10, 10, ("m1", "m2", "m3", "m4")
READINGS_PER_MESSAGE = 100
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "5000"))  # 5000 x 100 x 4 = 2,000,000 points
NAIVE_MESSAGES = int(os.environ.get("BENCH_NAIVE_MESSAGES", "50"))  # 20,000 points


def db_url(name: str) -> str:
    parts = urlsplit(PG_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recreate_database() -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 0\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, port


def setup_django(database_url: str):
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_fleet() -> tuple[list[str], list[list[str]], dict]:
    from edge_node.models import EdgeNode
    from twins.models import Asset, AssetType, Metric, Site

    site = Site.objects.create(key="bench", name="Bench")
    asset_type = AssetType.objects.create(key="bench-type", name="Bench type")
    for m in METRICS:
        Metric.objects.create(asset_type=asset_type, key=m, min_value=-1e6, max_value=1e6)
    node_ids, asset_keys = [], []
    for n in range(NODES):
        node = EdgeNode.objects.create(node_id=f"bench-node-{n}", site=site)
        node_ids.append(node.node_id)
        keys = []
        for a in range(ASSETS_PER_NODE):
            asset = Asset.objects.create(key=f"bench-{n}-{a}", name=f"Bench {n}-{a}", site=site, asset_type=asset_type, node=node)
            keys.append(asset.key)
        asset_keys.append(keys)
    ids = dict(Asset.objects.values_list("key", "id"))
    metric_ids = dict(Metric.objects.filter(asset_type=asset_type).values_list("key", "id"))
    return node_ids, asset_keys, {"assets": ids, "metrics": metric_ids}


def build_messages(node_ids, asset_keys, count: int, t0: float, seq0: int = 1) -> list[tuple[str, bytes, int]]:
    from edge_node.agent import contract

    messages = []
    for i in range(count):
        n = i % NODES
        seq = seq0 + i // NODES
        readings = []
        for r in range(READINGS_PER_MESSAGE):
            ts = t0 + (i // NODES) * 0.5 + r * 0.001
            readings.append({"asset": asset_keys[n][r % ASSETS_PER_NODE], "ts": ts, "values": {m: float(r + k) for k, m in enumerate(METRICS)}})
        messages.append((contract.topic(node_ids[n], "telemetry"), contract.encode({"seq": seq, "readings": readings}), READINGS_PER_MESSAGE * len(METRICS)))
    return messages


class Confirmations:
    """Receives the ingest's confirmations like the nodes' agents do, and counts the seqs."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        from edge_node.agent import contract

        self.seqs: set[tuple[str, int]] = set()
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-confirms", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{contract.TOPIC_PREFIX}/+/confirm", qos=1)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        from edge_node.agent import contract

        node = contract.parse_topic(msg.topic)[0]
        ranges = contract.parse_confirmation(msg.payload).get("telemetry", [])
        with self.lock:
            self.seqs.update((node, s) for first, last in ranges for s in range(first, last + 1))

    def count(self, seq_from: int, seq_to: int) -> int:
        with self.lock:
            return sum(1 for _n, s in self.seqs if seq_from <= s < seq_to)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_all(port: int, messages) -> float:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.perf_counter()
    infos = [client.publish(topic, payload, qos=1) for topic, payload, _ in messages]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()
    return start


def stored_points(conn, node_ids) -> int:
    row = conn.execute("SELECT COALESCE(SUM(readings), 0) FROM ingest_nodestream WHERE node_key = ANY(%s)", [node_ids]).fetchone()
    return int(row[0])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process: what the worker costs, whatever else runs."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def end_to_end(port: int, node_ids, asset_keys, confirm: bool = True, seq0: int = 1, age_s: float = 3600) -> dict:
    expected = MESSAGES * READINGS_PER_MESSAGE * len(METRICS)
    t0 = time.time() - age_s
    messages = build_messages(node_ids, asset_keys, MESSAGES, t0, seq0=seq0)
    confirms = Confirmations(port)
    env = dict(os.environ, DATABASE_URL=db_url(DB_NAME), MQTT_URL=f"mqtt://127.0.0.1:{port}", LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
               INGEST_CONFIRM="1" if confirm else "0")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "ingest", "--client-id", "bench-ingest", "--protocol", "5", "--no-live"],
        cwd=ROOT, env=env,
    )
    try:
        with psycopg.connect(db_url(DB_NAME), autocommit=True) as conn:
            # warm up until the worker is connected and subscribed, before the clock starts
            deadline = time.time() + 60
            attempt = 0
            while stored_points(conn, node_ids) == 0:
                if time.time() > deadline:
                    reasons = conn.execute("SELECT reason, MIN(detail) FROM ingest_deadletter GROUP BY reason").fetchall()
                    raise RuntimeError(f"the ingest worker stored nothing within 60 s; dead letters: {reasons}")
                publish_all(port, build_messages(node_ids, asset_keys, NODES, t0 - 1800, seq0=10**9 + seq0 + attempt))
                attempt += 1
                time.sleep(1.0)
            time.sleep(1.0)
            base = stored_points(conn, node_ids)
            cpu_before = _cpu_seconds(worker.pid)
            start = publish_all(port, messages)
            published = time.perf_counter()
            deadline = time.time() + 300
            last_change, last = time.time(), -1
            while True:
                done = stored_points(conn, node_ids) - base
                if done >= expected:
                    break
                if done != last:
                    last, last_change = done, time.time()
                if time.time() - last_change > 15 or time.time() > deadline:
                    break  # stalled: report what arrived as lost
                time.sleep(0.05)
            elapsed = time.perf_counter() - start
            if confirm:  # the last confirmations are on their way
                wait_until = time.time() + 10
                while confirms.count(seq0, seq0 + MESSAGES) < MESSAGES and time.time() < wait_until:
                    time.sleep(0.05)
            confirmed = confirms.count(seq0, seq0 + MESSAGES)
            worker_cpu = _cpu_seconds(worker.pid) - cpu_before
            low, high = datetime.fromtimestamp(t0, UTC), datetime.fromtimestamp(t0 + 1000 * MESSAGES, UTC)
            total, distinct = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT (time, asset_id, metric_id)) FROM ingest_telemetry WHERE time >= %s AND time < %s",
                [low, high],
            ).fetchone()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        confirms.close()
    return {
        "worker_cpu_s": worker_cpu,
        "confirmed_messages": confirmed,
        "points": expected,
        "seconds": elapsed,
        "publish_seconds": published - start,
        "points_per_s": expected / elapsed,
        "lost": max(0, expected - distinct),
        "duplicates": total - distinct,
    }


def copy_ceiling(ids: dict) -> dict:
    asset_ids = list(ids["assets"].values())
    metric_ids = list(ids["metrics"].values())
    t0 = time.time() - 2 * 3600
    total = MESSAGES * READINGS_PER_MESSAGE * len(METRICS)
    rows = []
    for i in range(total):
        rows.append((datetime.fromtimestamp(t0 + i * 0.0001, UTC), asset_ids[i % len(asset_ids)], metric_ids[i % len(metric_ids)], float(i)))
    with psycopg.connect(db_url(DB_NAME)) as conn:
        start = time.perf_counter()
        for b in range(0, total, 10_000):
            with conn.cursor() as cur, cur.copy("COPY ingest_telemetry (time, asset_id, metric_id, value) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["timestamptz", "int4", "int4", "float8"])
                for row in rows[b : b + 10_000]:
                    copy.write_row(row)
            conn.commit()
        elapsed = time.perf_counter() - start
    return {"points": total, "seconds": elapsed, "points_per_s": total / elapsed}


def naive_baseline(port: int, node_ids, asset_keys, ids: dict) -> dict:
    """The tutorial pattern: a paho on_message callback, one ORM insert per value."""
    import paho.mqtt.client as mqtt

    from edge_node.agent import contract
    from ingest.models import Telemetry

    expected = NAIVE_MESSAGES * READINGS_PER_MESSAGE * len(METRICS)
    done = threading.Event()
    count = [0]
    assets, metrics = ids["assets"], ids["metrics"]

    def on_message(client, userdata, msg):
        body = json.loads(msg.payload)
        for r in body["readings"]:
            ts = datetime.fromtimestamp(r["ts"], UTC)
            for key, value in r["values"].items():
                Telemetry.objects.create(time=ts, asset_id=assets[r["asset"]], metric_id=metrics[key], value=value)
                count[0] += 1
        if count[0] >= expected:
            done.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-naive", protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.subscribe(contract.subscription("telemetry"), qos=1)
    sub.loop_start()
    time.sleep(0.5)
    messages = build_messages(node_ids, asset_keys, NAIVE_MESSAGES, time.time() - 3 * 3600, seq0=10**6)
    start = publish_all(port, messages)
    done.wait(600)
    elapsed = time.perf_counter() - start
    sub.loop_stop()
    return {"points": count[0], "seconds": elapsed, "points_per_s": count[0] / elapsed}


def main() -> None:
    recreate_database()
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    mosquitto, port = start_mosquitto(workdir)
    try:
        setup_django(db_url(DB_NAME))
        node_ids, asset_keys, ids = make_fleet()
        e2e = end_to_end(port, node_ids, asset_keys)
        print(f"end-to-end: {e2e['points']:,} points in {e2e['seconds']:.2f} s = {e2e['points_per_s']:,.0f} points/s "
              f"(published in {e2e['publish_seconds']:.2f} s); lost {e2e['lost']}, duplicates {e2e['duplicates']}; "
              f"{e2e['confirmed_messages']:,} of {MESSAGES:,} messages confirmed back to their nodes")
        plain = end_to_end(port, node_ids, asset_keys, confirm=False, seq0=2 * 10**6, age_s=2.5 * 3600)
        again = end_to_end(port, node_ids, asset_keys, confirm=True, seq0=3 * 10**6, age_s=1.5 * 3600)
        # The worker's own CPU time per point tells the cost apart from the load of the machine.
        cpu_on = min(e2e["worker_cpu_s"], again["worker_cpu_s"])
        cost = cpu_on / plain["worker_cpu_s"] - 1
        print(f"without confirmations (INGEST_CONFIRM=0): {plain['points_per_s']:,.0f} points/s, worker CPU "
              f"{plain['worker_cpu_s']:.2f} s; with them: {e2e['points_per_s']:,.0f} and {again['points_per_s']:,.0f} points/s, "
              f"worker CPU {e2e['worker_cpu_s']:.2f} and {again['worker_cpu_s']:.2f} s; confirmations cost {cost:+.1%} worker CPU")
        ceiling = copy_ceiling(ids)
        print(f"binary COPY ceiling: {ceiling['points']:,} rows in {ceiling['seconds']:.2f} s = {ceiling['points_per_s']:,.0f} rows/s")
        naive = naive_baseline(port, node_ids, asset_keys, ids)
        print(f"naive baseline (one ORM insert per reading): {naive['points']:,} points in {naive['seconds']:.2f} s = {naive['points_per_s']:,.0f} points/s")
        print(f"end-to-end / COPY = {e2e['points_per_s'] / ceiling['points_per_s']:.2f} (target >= 0.20); "
              f"end-to-end / naive = {e2e['points_per_s'] / naive['points_per_s']:.0f}x (target >= 50x)")
        print(json.dumps({
            "points_per_s": round(e2e["points_per_s"]),
            "copy_points_per_s": round(ceiling["points_per_s"]),
            "naive_points_per_s": round(naive["points_per_s"]),
            "lost": e2e["lost"],
            "duplicates": e2e["duplicates"],
            "confirmed_messages": e2e["confirmed_messages"],
            "messages": MESSAGES,
            "points_per_s_without_confirmations": round(plain["points_per_s"]),
            "worker_cpu_s_with_confirmations": round(cpu_on, 2),
            "worker_cpu_s_without_confirmations": round(plain["worker_cpu_s"], 2),
            "confirmation_cpu_cost": round(cost, 3),
        }))
    finally:
        mosquitto.terminate()
        mosquitto.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
        from django.db import connections

        connections.close_all()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


if __name__ == "__main__":
    main()
