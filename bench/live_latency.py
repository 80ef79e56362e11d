"""Live-update latency through the real stack, with many browsers connected.

Run from the repository root: ``.venv/bin/python bench/live_latency.py`` (``make bench-live``).
Needs Mosquitto at $MQTT_TEST_URL (default mqtt://127.0.0.1:1883), Redis at $REDIS_URL
(default redis://127.0.0.1:6379/13, a database of its own) and PostgreSQL at
$BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1/; a scratch database
``aiot_bench_live`` is created and dropped). Without PostgreSQL it uses SQLite in a temp dir.

What runs: the ingest worker (``manage.py ingest``, live updates on) and daphne
(``web.asgi``) as subprocesses sharing the Redis channel layer; 200 WebSocket clients
(the ``websockets`` library, logged in with a session cookie made in the database), each
on one asset's live group like an open asset page; a paho publisher sends 1,000 readings/s
(``--assets`` assets, each reading stamped with its publish time) for ``--seconds``.

Latency: for every asset update a client receives, now minus the reading's timestamp, i.e.
MQTT publish -> broker -> ingest (validate, store, commit) -> channel layer -> daphne ->
per-client coalescing -> WebSocket. Updates are coalesced (latest wins) in the ingest
(INGEST_LIVE_INTERVAL_S per asset) and per client (web.live_messages.FLUSH_INTERVAL_S),
so a client gets the freshest reading a few times a second, not every reading.
``--mode site`` subscribes every client to the whole site instead (the fleet page).

Percentiles cover the updates received while the stream runs (after ``--warmup``). Once
publishing stops, each asset's last reading still goes out when its throttle slot comes (up
to ~1.2 intervals later); those are counted apart under "after_stop". "stages_ms" splits the
time: publish -> the ingest's flush (batching, storing, throttle), flush -> the consumer
sends the frame (channel layer, daphne), frame -> client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "aiot_bench_live"
# After publishing stops, clients listen this long more: the last reading of each asset still
# waits for its throttle slot. Those updates are reported apart ("after_stop"), not in the
# steady-state percentiles.
TRAIL_S = 1.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def make_database(pg_url: str, tmp: Path) -> tuple[str, Callable[[], None]]:
    """A throwaway database URL and a function that drops it."""
    if pg_url and reachable(pg_url, 5432):
        import psycopg

        with psycopg.connect(pg_url.rstrip("/") + "/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DB_NAME}")

        def drop() -> None:
            with psycopg.connect(pg_url.rstrip("/") + "/postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")

        return pg_url.rstrip("/") + "/" + DB_NAME, drop
    print("PostgreSQL not reachable: using SQLite in a temp dir", flush=True)
    return f"sqlite:///{tmp / 'bench.sqlite3'}", lambda: None


def setup_fleet(n_assets: int, node_id: str) -> dict:
    """Migrate, then one site, one asset type, one node with n assets, one facility manager
    with a session; returns ids, keys and the session cookie."""
    import django

    django.setup()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import Group, User
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from edge_node.models import EdgeNode
    from twins.models import Asset, AssetType, Metric, Site
    from web.roles import FACILITY_MANAGER

    call_command("migrate", verbosity=0, interactive=False)
    site = Site.objects.create(key="bench-site", name="Bench site")
    asset_type = AssetType.objects.create(key="bench-type", name="Bench type")
    Metric.objects.create(asset_type=asset_type, key="temperature_c", label="Temperature", unit="°C", min_value=-1e12, max_value=1e12)
    node = EdgeNode.objects.create(node_id=node_id, site=site)
    assets = [Asset(key=f"bench-{i:04d}", name=f"Bench asset {i}", site=site, asset_type=asset_type, node=node) for i in range(n_assets)]
    Asset.objects.bulk_create(assets)
    user = User.objects.create_user("bench-manager", password=uuid.uuid4().hex)
    user.groups.add(Group.objects.get(name=FACILITY_MANAGER))
    site.members.add(user)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    from django.db import connections

    ids = {a.key: a.id for a in Asset.objects.filter(site=site)}
    connections.close_all()
    return {"site": site.id, "assets": ids, "session": session.session_key}


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


class Publisher(threading.Thread):
    """1,000 readings/s as `rate_msgs` MQTT messages a second, each reading stamped now, until `until`."""

    def __init__(self, mqtt_url: str, node_id: str, asset_keys: list[str], readings_per_s: int, until: float, rate_msgs: int = 20) -> None:
        super().__init__(daemon=True)
        import paho.mqtt.client as mqtt

        from edge_node.agent import contract

        self.contract = contract
        parts = urlsplit(mqtt_url)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(1000)
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()
        self.topic = contract.topic(node_id, "telemetry")
        self.keys = asset_keys
        self.per_msg = readings_per_s // rate_msgs
        self.interval = 1.0 / rate_msgs
        self.until = until  # wall-clock end of publishing
        self.sent = 0
        self.seq = 0

    def run(self) -> None:
        i = 0
        next_at = time.monotonic()
        while time.time() < self.until:
            readings = []
            for _ in range(self.per_msg):
                readings.append({"asset": self.keys[i % len(self.keys)], "ts": time.time(), "values": {"temperature_c": float(i)}})
                i += 1
            self.seq += 1
            self.client.publish(self.topic, self.contract.encode({"seq": self.seq, "readings": readings}), qos=1)
            self.sent += len(readings)
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def run_clients(ws_url: str, origin: str, session: str, subscriptions: list[dict], measure_from: list[float], stop_at: list[float]) -> tuple:
    from websockets.asyncio.client import connect

    latencies: list[float] = []
    trailing: list[float] = []  # updates received after publishing stopped
    # where the time goes: publish -> ingest flush (stamped as last_seen) -> the consumer sends the frame -> client
    stages: dict[str, list[float]] = {"to_ingest_flush": [], "flush_to_socket_send": [], "socket_send_to_client": []}
    msgs = [0] * len(subscriptions)
    frames = [0] * len(subscriptions)
    ready = asyncio.Event()
    connected = 0

    async def client(idx: int, sub: dict) -> None:
        nonlocal connected
        async with connect(ws_url, origin=origin, additional_headers={"Cookie": f"sessionid={session}"}, open_timeout=30, max_queue=None) as ws:
            await ws.send(json.dumps({"action": "subscribe", **sub}))
            reply = json.loads(await ws.recv())
            if reply.get("type") != "subscribed":
                raise RuntimeError(f"client {idx}: subscription refused: {reply}")
            connected += 1
            if connected == len(subscriptions):
                ready.set()
            while True:
                now_wall = time.time()
                if stop_at[0] and now_wall > stop_at[0] + TRAIL_S:
                    return
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=1.0)
                except TimeoutError:
                    continue
                now = time.time()
                frame = json.loads(raw)
                if frame.get("type") != "updates" or not measure_from[0] or now < measure_from[0]:
                    continue
                if now > stop_at[0]:
                    trailing.extend((now - ts) * 1000 for m in frame["messages"] if m.get("type") == "asset.update" for ts, _v in m["values"].values())
                    continue
                frames[idx] += 1
                for m in frame["messages"]:
                    if m.get("type") != "asset.update":
                        continue
                    msgs[idx] += 1
                    stages["flush_to_socket_send"].append((frame["server_time"] - m["last_seen"]) * 1000)
                    stages["socket_send_to_client"].append((now - frame["server_time"]) * 1000)
                    for ts, _value in m["values"].values():
                        latencies.append((now - ts) * 1000)
                        stages["to_ingest_flush"].append((m["last_seen"] - ts) * 1000)

    tasks = [asyncio.create_task(client(i, s)) for i, s in enumerate(subscriptions)]
    await asyncio.wait_for(ready.wait(), 60)
    return tasks, latencies, msgs, frames, stages, trailing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--readings-per-s", type=int, default=1000)
    parser.add_argument("--assets", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--mode", choices=["asset", "site"], default="asset")
    args = parser.parse_args()

    mqtt_url = os.environ.get("MQTT_TEST_URL", "mqtt://127.0.0.1:1883")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13")
    pg_url = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1/")
    for url, port, name in ((mqtt_url, 1883, "MQTT broker"), (redis_url, 6379, "Redis")):
        if not reachable(url, port):
            sys.exit(f"needs the {name} at {url}")

    tmp = Path(tempfile.mkdtemp(prefix="aiot-bench-live-"))
    database_url, drop_database = make_database(pg_url, tmp)
    node_id = f"bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",)}
    env.update(
        DATABASE_URL=database_url, REDIS_URL=redis_url, MQTT_URL=mqtt_url, ALLOWED_HOSTS="127.0.0.1,localhost", AIOT_VAR_DIR=str(tmp),
        INGEST_SESSION_EXPIRY_S="60", PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="web.settings",
    )
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "MQTT_URL", "AIOT_VAR_DIR", "DJANGO_SETTINGS_MODULE")})
    procs: list[subprocess.Popen] = []
    publisher = None
    started = time.monotonic()
    try:
        fleet = setup_fleet(args.assets, node_id)
        print(f"database {database_url.rsplit('/', 1)[-1]} ready: {args.assets} assets ({time.monotonic() - started:.1f} s)", flush=True)
        py = sys.executable
        procs.append(start([py, "manage.py", "ingest", "--client-id", f"bench-ingest-{node_id}", "--protocol", "5"], env, tmp / "ingest.log"))
        procs.append(start([py, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "web.asgi:application"], env, tmp / "daphne.log"))

        def web_up() -> bool:
            for proc, name in zip(procs, ("ingest", "daphne"), strict=True):
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited: {(tmp / f'{name}.log').read_text()[-2000:]}")
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200
            except OSError:
                return False

        wait_for(web_up, 30, "daphne")
        keys = sorted(fleet["assets"])
        if args.mode == "asset":
            subscriptions = [{"asset": fleet["assets"][keys[i % len(keys)]]} for i in range(args.clients)]
        else:
            subscriptions = [{"site": fleet["site"]}] * args.clients

        async def scenario() -> tuple:
            nonlocal publisher
            measure_from, stop_at = [0.0], [0.0]
            tasks, latencies, msgs, frames, stages, trailing = await run_clients(
                f"ws://127.0.0.1:{port}/ws/live/", f"http://127.0.0.1:{port}", fleet["session"], subscriptions, measure_from, stop_at,
            )
            print(f"{args.clients} clients connected and subscribed ({args.mode} mode)", flush=True)
            measure_from[0] = time.time() + args.warmup
            stop_at[0] = measure_from[0] + args.seconds
            publisher = Publisher(mqtt_url, node_id, keys, args.readings_per_s, until=stop_at[0])
            publisher.start()
            import psutil

            watched = {"ingest": psutil.Process(procs[0].pid), "daphne": psutil.Process(procs[1].pid), "bench": psutil.Process()}
            for proc in watched.values():
                proc.cpu_percent(None)
            await asyncio.sleep(args.warmup + args.seconds)
            cpu.update({name: round(proc.cpu_percent(None)) for name, proc in watched.items()})
            await asyncio.sleep(TRAIL_S + 0.5)
            done, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()
            failed = [t.exception() for t in done if not t.cancelled() and t.exception() is not None]
            if failed:
                raise RuntimeError(f"{len(failed)} clients failed, first: {failed[0]!r}")
            return latencies, msgs, frames, stages, trailing

        cpu: dict[str, int] = {}
        latencies, msgs, frames, stages, trailing = asyncio.run(scenario())
        publisher.join(5)
        sent = publisher.sent
        result = {
            "p50_ms": round(percentile(latencies, 50), 1),
            "p90_ms": round(percentile(latencies, 90), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "max_ms": round(max(latencies), 1) if latencies else None,
            "clients": args.clients,
            "readings_per_s": args.readings_per_s,
            "published_readings": sent,
            "msgs_per_client_per_s": round(sum(msgs) / args.clients / args.seconds, 2),
            "frames_per_client_per_s": round(sum(frames) / args.clients / args.seconds, 2),
            "clients_without_updates": sum(1 for m in msgs if m == 0),
            "after_stop": {"updates": len(trailing), "max_ms": round(max(trailing), 1) if trailing else None},
            "stages_ms": {name: {"p50": round(percentile(v, 50), 1), "p99": round(percentile(v, 99), 1)} for name, v in stages.items()},
            "cpu_percent": cpu,
            "mode": args.mode,
            "assets": args.assets,
            "database": "postgresql" if database_url.startswith("postgres") else "sqlite",
        }
        print(f"latency publish -> browser: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms over {len(latencies)} updates")
        print(f"per client: {result['msgs_per_client_per_s']} asset updates/s in {result['frames_per_client_per_s']} frames/s; {result['clients_without_updates']} clients got none")
        print(f"total {time.monotonic() - started:.1f} s")
        print(json.dumps(result))
    finally:
        if publisher is not None:
            publisher.close()
        for proc in reversed(procs):
            stop(proc)
        try:
            from django.db import connections

            connections.close_all()
        except Exception as exc:  # noqa: BLE001 - cleanup goes on
            print(f"closing connections failed: {exc}", file=sys.stderr)
        drop_database()


if __name__ == "__main__":
    main()
