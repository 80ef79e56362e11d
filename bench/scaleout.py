"""Scale-out benchmark: the platform as separate processes on one box, the way it runs on many.

Real PostgreSQL (a scratch database), Redis (REDIS_URL) and a Mosquitto started for the run.

1. Throughput: the same stream (10 nodes x 10 assets x 4 metrics, 100 readings a message)
   stored by one ingest worker, then by three on a shared subscription; points/s counted
   in the database. On a 2-core box three workers share the cores with PostgreSQL and the
   broker: the ratio says what one more worker buys on *this* machine, not on three hosts.
2. The stack: 3 ingest workers (shared subscription, live updates on), 2 daphne, 2 Celery
   workers and 1 beat (maintenance every few seconds), each its own process. A scripted
   stream with known threshold crossings (what the rules decide over the whole stream, in
   order, is the expected set of alerts), one ingest worker SIGKILLed after the first alert and
   started again; two ``manage.py maintain`` started at once meanwhile. Then the signed model
   artifact is downloaded with node credentials from each daphne (the second one with its own,
   empty AIOT_VAR_DIR: another host) and checked (hash and signature).

Prints the figures; the last line is JSON. Knobs: BENCH_PG_URL (server; a scratch database
is created and dropped), REDIS_URL, BENCH_MESSAGES (throughput messages, default 1000).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
DB_NAME = "aiot_bench_scaleout"
NODES, ASSETS_PER_NODE, METRICS = 10, 10, ("m1", "m2", "m3", "m4")
READINGS_PER_MESSAGE = 100
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "1000"))
ALERT_ASSETS, ALERT_SEQS = 4, 300
PY = sys.executable


def db_url(name: str) -> str:
    return urlunsplit(urlsplit(PG_URL)._replace(path=f"/{name}"))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Procs:
    """Child processes, each with its log file; stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, tmp: Path, env: dict) -> None:
        self.tmp, self.env, self.running = tmp, env, {}

    def start(self, name: str, argv: list[str], **extra: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 (handed to the child)
        proc = subprocess.Popen(argv, cwd=ROOT, env={**self.env, **extra}, stdout=log, stderr=subprocess.STDOUT)
        self.running[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def kill9(self, name: str) -> None:
        proc = self.running.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop(self, name: str) -> None:
        proc = self.running.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


def setup_django(env: dict) -> None:
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "MQTT_URL", "AIOT_VAR_DIR", "DJANGO_SETTINGS_MODULE", "CHANNEL_LAYER_PREFIX")})
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# --- 1. throughput ---------------------------------------------------------------------------


def make_throughput_fleet() -> tuple[list[str], list[list[str]]]:
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
        asset_keys.append([
            Asset.objects.create(key=f"bench-{n}-{a}", name=f"Bench {n}-{a}", site=site, asset_type=asset_type, node=node).key
            for a in range(ASSETS_PER_NODE)
        ])
    return node_ids, asset_keys


def build_messages(node_ids, asset_keys, count: int, t0: float, seq0: int) -> list[tuple[str, bytes]]:
    from edge_node.agent import contract

    messages = []
    for i in range(count):
        n, step = i % NODES, i // NODES
        readings = [
            {"asset": asset_keys[n][r % ASSETS_PER_NODE], "ts": t0 + step * 0.5 + r * 0.001, "values": {m: float(r + k) for k, m in enumerate(METRICS)}}
            for r in range(READINGS_PER_MESSAGE)
        ]
        messages.append((contract.topic(node_ids[n], "telemetry"), contract.encode({"seq": seq0 + step, "readings": readings})))
    return messages


def publish(port: int, messages, pause_s: float = 0.0, client_id: str = "bench-publisher") -> None:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = []
    for topic, payload in messages:
        infos.append(client.publish(topic, payload, qos=1))
        if pause_s:
            time.sleep(pause_s)
    for info in infos:
        info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


def stored_readings(conn, node_ids) -> int:
    return int(conn.execute("SELECT COALESCE(SUM(readings), 0) FROM ingest_nodestream WHERE node_key = ANY(%s)", [node_ids]).fetchone()[0])


def throughput(procs: Procs, port: int, node_ids, asset_keys, workers: int, seq0: int) -> dict:
    group = f"tp{workers}"
    names = [f"tp{workers}-ingest{i}" for i in range(workers)]
    for i, name in enumerate(names):
        procs.start(name, [PY, "manage.py", "ingest", "--client-id", f"bench-{group}-{i}", "--protocol", "5", "--no-live", "--share", group])
    t0 = time.time() - 3600 * (2 + workers)  # each run its own hour: no reading of one is a duplicate of the other
    expected = MESSAGES * READINGS_PER_MESSAGE
    try:
        with psycopg.connect(db_url(DB_NAME), autocommit=True) as conn:
            wait_for(lambda: all("connected to" in procs.log(n) for n in names), 60, "the ingest workers to connect")
            publish(port, build_messages(node_ids, asset_keys, NODES, t0 - 600, seq0 - 1))  # warm-up: one message a node
            warm = NODES * READINGS_PER_MESSAGE
            base0 = stored_readings(conn, node_ids) - warm
            wait_for(lambda: stored_readings(conn, node_ids) - base0 >= warm, 60, "the warm-up stored")
            base = stored_readings(conn, node_ids)
            messages = build_messages(node_ids, asset_keys, MESSAGES, t0, seq0)
            start = time.perf_counter()
            publish(port, messages)
            wait_for(lambda: stored_readings(conn, node_ids) - base >= expected, 300, f"{expected} readings", interval=0.05)
            elapsed = time.perf_counter() - start
    finally:
        for name in names:
            procs.stop(name)
    handled = [name for name in names if "'messages': 0," not in procs.log(name)]
    points = expected * len(METRICS)
    return {"workers": workers, "points": points, "seconds": round(elapsed, 2), "points_per_s": round(points / elapsed), "workers_that_stored": len(handled)}


# --- 2. the stack ----------------------------------------------------------------------------


def scripted_value(asset_index: int, seq: int) -> float:
    s = seq - 23 * asset_index
    wobble = 1.5 if s % 3 == 0 else -1.0
    for until, base in ((30, 70.0), (80, 86.0), (120, 106.0), (150, 86.0), (190, 70.0), (215, 90.0)):
        if s < until:
            return base + wobble
    return 70.0 + wobble


def expected_alerts(t0: float, thresholds) -> list[list[tuple]]:
    from twins.rules import LEVEL_NAMES, ConditionState

    per_asset = []
    for a in range(ALERT_ASSETS):
        state, alerts = ConditionState(), []
        for seq in range(1, ALERT_SEQS + 1):
            change = state.observe(t0 + seq, scripted_value(a, seq), thresholds)
            if change is None:
                continue
            if change.kind == "open":
                alerts.append([LEVEL_NAMES[change.level], t0 + seq, None, None])
            elif change.kind == "escalate":
                alerts[-1][0], alerts[-1][2] = LEVEL_NAMES[change.level], t0 + seq
            else:
                alerts[-1][3] = t0 + seq
        per_asset.append([tuple(x) for x in alerts])
    return per_asset


def make_alert_fleet():
    from edge_node.credentials import hash_secret
    from edge_node.models import EdgeNode
    from twins.models import AlertRule, Asset, AssetType, Metric, Site
    from twins.rules import Thresholds

    site = Site.objects.create(key="bench-alerts", name="Bench alerts")
    asset_type = AssetType.objects.create(key="bench-alert-type", name="Bench alert type")
    metric = Metric.objects.create(asset_type=asset_type, key="temperature_c", min_value=-1e6, max_value=1e6)
    node = EdgeNode.objects.create(node_id="bench-alert-node", site=site, secret_hash=hash_secret("bench-node-secret"), online=True)
    assets = [Asset.objects.create(key=f"alert-{a}", name=f"Alert {a}", site=site, asset_type=asset_type, node=node) for a in range(ALERT_ASSETS)]
    t = Thresholds(warning_above=80.0, critical_above=100.0, hysteresis=2.0, min_duration_s=3.0)
    AlertRule.objects.create(metric=metric, warning_above=t.warning_above, critical_above=t.critical_above, hysteresis=t.hysteresis, min_duration_s=t.min_duration_s)
    return node, assets, t


def alert_messages(node, assets, t0: float) -> list[tuple[str, bytes]]:
    from edge_node.agent import contract

    return [
        (contract.topic(node.node_id, "telemetry"), contract.encode({"seq": seq, "readings": [
            {"asset": a.key, "ts": t0 + seq, "values": {"temperature_c": scripted_value(i, seq)}} for i, a in enumerate(assets)
        ]}))
        for seq in range(1, ALERT_SEQS + 1)
    ]


def observed_alerts(assets) -> list[list[tuple]]:
    from twins.models import Alert

    def epoch(dt):
        return round(dt.timestamp(), 3) if dt else None

    return [
        [(x.severity, epoch(x.opened_at), epoch(x.escalated_at), epoch(x.cleared_at)) for x in Alert.objects.filter(asset=a, source="rule").order_by("opened_at")]
        for a in assets
    ]


def compare_alerts(expected, observed) -> dict:
    matched = sum(sum((collections.Counter(e) & collections.Counter(o)).values()) for e, o in zip(expected, observed, strict=True))
    n_expected, n_observed = sum(map(len, expected)), sum(map(len, observed))
    return {"alerts_expected": n_expected, "alerts_opened": n_observed, "alerts_matching": matched,
            "alerts_duplicated": n_observed - matched, "alerts_missed": n_expected - matched}


def register_artifact(node, tmp: Path):
    from django.contrib.auth.models import User

    from edge_node.rollouts import const
    from edge_node.rollouts.models import Rollout, RolloutNode
    from edge_node.rollouts.registry import register_anomaly_model
    from tests.rollouts.models_for_tests import write_anomaly_model

    model = register_anomaly_model(write_anomaly_model(tmp / "src", "bench-anomaly", "1"))
    admin = User.objects.create_user(username="bench-admin", password="bench-admin-pw")
    rollout = Rollout.objects.create(model=model, proposer=admin, approver=admin, state=const.CANARY)
    RolloutNode.objects.create(rollout=rollout, node=node)
    return model


def download_from(port: int, model, node_id: str, secret: str) -> bool:
    from edge_node import signing_keys
    from edge_node.agent import artifact

    auth = base64.b64encode(f"{node_id}:{secret}".encode()).decode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/models/{model.pk}/download", headers={"Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        data = resp.read()
    if hashlib.sha256(data).hexdigest() != model.sha256:
        return False
    artifact.verify_artifact(data, model.manifest(), model.signature, signing_keys.public_key_pem())
    return True


def manager_session(site) -> str:
    """A facility manager of ``site`` logged in (a session made in the database): the cookie."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import Group, User
    from django.contrib.sessions.backends.db import SessionStore

    from web.roles import FACILITY_MANAGER

    user = User.objects.create_user("bench-manager", password="bench-manager-pw")
    user.groups.add(Group.objects.get(name=FACILITY_MANAGER))
    site.members.add(user)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


class LiveWatchers:
    """One browser-like WebSocket client per daphne, on the alert site's live page: counts the
    asset and alert updates each web process delivers."""

    def __init__(self, ports: list[int], session: str, site_id: int) -> None:
        import asyncio

        self.counts = {f"daphne{i}": collections.Counter() for i in range(len(ports))}
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run(ports, session, site_id)), daemon=True)
        self.thread.start()

    async def _run(self, ports, session, site_id) -> None:
        import asyncio

        from websockets.asyncio.client import connect

        connected = [0]

        async def watch(i: int, port: int) -> None:
            async with connect(f"ws://127.0.0.1:{port}/ws/live/", origin=f"http://127.0.0.1:{port}",
                               additional_headers={"Cookie": f"sessionid={session}"}, open_timeout=30, max_queue=None) as ws:
                await ws.send(json.dumps({"action": "subscribe", "site": site_id}))
                if json.loads(await ws.recv()).get("type") != "subscribed":
                    raise RuntimeError(f"daphne{i}: subscription refused")
                connected[0] += 1
                if connected[0] == len(ports):
                    self.ready.set()
                while not self.stop.is_set():
                    try:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=0.5))
                    except TimeoutError:
                        continue
                    for m in frame.get("messages", [frame]):
                        self.counts[f"daphne{i}"][m.get("type", "?")] += 1

        try:
            await asyncio.gather(*(watch(i, p) for i, p in enumerate(ports)))
        except BaseException as exc:  # noqa: BLE001 - reported in the figures
            self.error = exc
            self.ready.set()

    def close(self) -> dict:
        self.stop.set()
        self.thread.join(10)
        return {name: dict(c) for name, c in self.counts.items()} | ({"error": repr(self.error)} if self.error else {})


def stack(procs: Procs, env: dict, tmp: Path, mqtt_port: int) -> dict:
    from django.db import close_old_connections

    node, assets, thresholds = make_alert_fleet()
    model = register_artifact(node, tmp)
    t0 = float(int(time.time()) - 3600)
    expected = expected_alerts(t0, thresholds)
    web_ports = [free_port(), free_port()]
    for i, port in enumerate(web_ports):
        # The second daphne stands for another host: its own, empty AIOT_VAR_DIR.
        var = {} if i == 0 else {"AIOT_VAR_DIR": str(tmp / "second-host-var")}
        procs.start(f"daphne{i}", [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "web.asgi:application"], **var)
    from tests.helpers import purge_celery_queue

    purge_celery_queue(REDIS_URL)  # tasks an earlier run or test left would run against this run's rows
    for i in range(2):
        procs.start(f"celery{i}", [PY, "-m", "celery", "-A", "web", "worker", "-c", "1", "-n", f"bench{i}@%h", "--without-gossip", "--without-mingle", "-l", "INFO"])
    procs.start("beat", [PY, "-m", "celery", "-A", "web", "beat", "-l", "INFO", "-s", str(tmp / "beat-schedule")])
    group = "stack"
    ids = [f"bench-stack-{i}" for i in range(3)]
    for i, cid in enumerate(ids):
        procs.start(f"ingest{i}", [PY, "manage.py", "ingest", "--client-id", cid, "--protocol", "5", "--share", group])

    def web_up(port: int) -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200
        except OSError:
            return False

    wait_for(lambda: all(web_up(p) for p in web_ports), 60, "both daphne processes")
    wait_for(lambda: all("connected to" in procs.log(f"ingest{i}") for i in range(3)), 60, "three ingest workers")
    wait_for(lambda: all("ready." in procs.log(f"celery{i}") for i in range(2)), 60, "two celery workers")
    watchers = LiveWatchers(web_ports, manager_session(node.site), node.site_id)
    watchers.ready.wait(30)

    from twins.models import Alert

    publisher = threading.Thread(target=publish, args=(mqtt_port, alert_messages(node, assets, t0), 0.01, "bench-alert-node"))
    publisher.start()
    wait_for(lambda: Alert.objects.filter(asset__in=assets).exists(), 60, "the first alert")
    procs.kill9("ingest1")  # whatever it held unacknowledged stays in its broker session
    maintainers = [subprocess.Popen([PY, "manage.py", "maintain"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    time.sleep(1.0)
    procs.start("ingest1", [PY, "manage.py", "ingest", "--client-id", ids[1], "--protocol", "5", "--share", group])
    maintenance = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in maintainers]
    publisher.join(120)
    n_expected = sum(map(len, expected))

    def settled() -> bool:
        close_old_connections()
        return Alert.objects.filter(asset__in=assets, source="rule").exclude(state="cleared").count() == 0 and Alert.objects.filter(asset__in=assets).count() >= n_expected

    try:
        wait_for(settled, 120, "every expected alert opened and cleared")
    except RuntimeError as exc:
        print(f"alerts did not settle: {exc}", flush=True)
    time.sleep(2.0)  # a late duplicate would land now
    live = watchers.close()
    result = compare_alerts(expected, observed_alerts(assets))
    with psycopg.connect(db_url(DB_NAME), autocommit=True) as conn:
        total, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT (time, asset_id, metric_id)) FROM ingest_telemetry WHERE asset_id = ANY(%s)", [[a.id for a in assets]],
        ).fetchone()
    readings = ALERT_SEQS * ALERT_ASSETS
    downloads = {}
    for i, port in enumerate(web_ports):
        ok = [download_from(port, model, node.node_id, "bench-node-secret") for _ in range(3)]
        downloads[f"daphne{i}"] = sum(ok)
    beat_runs = sum(procs.log(f"celery{i}").count("maintenance: {") for i in range(2))
    failed_in_workers = sum(procs.log(f"celery{i}").count("maintenance step") for i in range(2))
    conflicts = sum(len(m.get("failed", [])) + len(m.get("telemetry", {}).get("failures", [])) for m in maintenance) + failed_in_workers
    result.update({
        "lost": readings - distinct, "duplicates": total - distinct,
        "downloads_by_web_process": downloads,
        "live_messages_by_web_process": live,
        "maintenance_conflicts": conflicts,
        "maintenance_runs": {"manual_concurrent": [("skipped" if "skipped" in m else "ran") for m in maintenance], "beat_on_celery": beat_runs},
    })
    return result


def main() -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="aiot-bench-scaleout-"))
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    mqtt_port = free_port()
    (tmp / "mosquitto.conf").write_text(
        f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 0\n"
    )
    broker = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(tmp / "mosquitto.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {k: v for k, v in os.environ.items() if k != "AIOT_REQUIRE_SERVICES"}
    env.update(
        DATABASE_URL=db_url(DB_NAME), REDIS_URL=REDIS_URL, MQTT_URL=f"mqtt://127.0.0.1:{mqtt_port}", AIOT_VAR_DIR=str(tmp / "var"),
        DJANGO_SETTINGS_MODULE="web.settings", CHANNEL_LAYER_PREFIX=os.environ.get("CHANNEL_LAYER_PREFIX", "asgi_bench_scaleout"),
        ALLOWED_HOSTS="127.0.0.1,localhost", LOG_LEVEL="INFO", PYTHONUNBUFFERED="1", INGEST_SESSION_EXPIRY_S="120",
        MAINTENANCE_INTERVAL_S="3", TWIN_REFRESH_INTERVAL_S="5", ALERT_REOPEN_WINDOW_S="0", ALERT_SEQ_GAP_WAIT_S="60",
        CELERY_BROKER_URL=REDIS_URL, CELERY_RESULT_BACKEND=REDIS_URL,
    )
    setup_django(env)
    procs = Procs(tmp, env)
    load = os.getloadavg()
    try:
        node_ids, asset_keys = make_throughput_fleet()
        one = throughput(procs, mqtt_port, node_ids, asset_keys, 1, seq0=1_000)
        print(f"1 ingest worker: {one}", flush=True)
        three = throughput(procs, mqtt_port, node_ids, asset_keys, 3, seq0=100_000)
        print(f"3 ingest workers (shared subscription): {three}", flush=True)
        result = stack(procs, env, tmp, mqtt_port)
    finally:
        procs.stop_all()
        broker.terminate()
        broker.wait(10)
    result.update({
        "points_per_s_1_worker": one["points_per_s"], "points_per_s_3_workers": three["points_per_s"],
        "speedup_3_workers": round(three["points_per_s"] / one["points_per_s"], 2),
        "cores": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in load], "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "logs": str(tmp),
    })
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
