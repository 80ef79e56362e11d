"""Rollout benchmark: simulated nodes (500 by default; ``--nodes 5000``) take a signed model through canary and promotion.

Run from the repository root: ``.venv/bin/python bench/rollout.py [--nodes 5000]`` (needs the broker at
$MQTT_TEST_URL, default mqtt://127.0.0.1:1883). Prints its figures; the last line is JSON.

Everything is real except the gateways' hardware: a throwaway SQLite database and VAR_DIR, the
platform's Django app behind a WSGI server with a pool of request threads (node-authenticated
artifact downloads, the keyed HMAC check per request), the rollout listener as its own process
(``manage.py rollout_listener``, as deployed) over MQTT with the platform account, and the
simulated nodes in their own process (edge_node.agent.deploy_sim.FleetProcess: each node its own
models dir and the agent's DeployManager: download, size + SHA-256 + Ed25519 check, fsynced
install, shadow run on live windows, gated atomic switch). ``--fleet-processes 0 --listener thread
--web-threads 0`` puts everything in one process, as the bench did before.
Measured: seconds from approval to every node running the new version, the most downloads the
server served at once (must stay within the in-flight window), seconds from command to final
reply per node, and CPU milliseconds per node of the web server, the listener and the fleet
(load-independent, unlike the seconds on a shared machine).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(native_id: int) -> float:
    """CPU seconds (user + system) of one live thread of this process, from /proc."""
    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


try:  # loaded here, not in the child between fork and exec (threads are running by then)
    _PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except OSError:
    _PRCTL = None


def _die_with_parent() -> None:
    """In the listener's child: SIGTERM when the bench dies, even by SIGKILL (Linux prctl)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of another process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def database_backends() -> list[int]:
    """PostgreSQL: the server processes serving this database (the bench's connections); [] for SQLite."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [row[0] for row in cursor.fetchall()]


def cpu_by_role(httpd: object, fleets: list, listener_proc: subprocess.Popen | None, backends: set[int]) -> dict[str, float]:
    """This process's CPU seconds so far, split by who spent them: the platform's web requests,
    the rollout listener (its loop, its MQTT client and the driver's database work), the simulated
    fleet (deploy pool and its MQTT client), and the rest (the bench's polling, jitter timers)."""
    roles = {"web": float(getattr(httpd, "cpu_seconds", 0.0)), "listener": 0.0, "fleet": 0.0}
    for t in threading.enumerate():
        if t.native_id is None:
            continue
        if t.name == "rollout-listener" or t.name.startswith("paho-mqtt-client-aiot-rollouts"):
            roles["listener"] += thread_cpu(t.native_id)
        elif t.name.startswith(("sim-deploy", "paho-mqtt-client-sim-deploy")):
            roles["fleet"] += thread_cpu(t.native_id)
    times = os.times()
    own = times.user + times.system
    roles["other"] = own - roles["web"] - roles["listener"] - roles["fleet"]
    # Fleet processes (--fleet-processes >= 1): their own CPU, not this process's.
    roles["fleet"] += sum(process_cpu(f.process.pid) for f in fleets if hasattr(f, "process"))
    others = sum(process_cpu(f.process.pid) for f in fleets if hasattr(f, "process"))
    if listener_proc is not None:  # --listener process: its own CPU
        roles["listener"] += process_cpu(listener_proc.pid)
        others += process_cpu(listener_proc.pid)
    roles["database"] = sum(process_cpu(pid) for pid in backends)  # PostgreSQL's server processes (0: SQLite, in-process)
    roles["platform"] = roles["web"] + roles["listener"] + roles["database"]
    roles["total"] = own + others + roles["database"]
    return roles


def fleet_summary(fleets: list) -> tuple[dict[str, int], int]:
    """Nodes on each version and nodes deploying right now, over every fleet."""
    versions: dict[str, int] = {}
    busy = 0
    for f in fleets:
        s = f.summary()
        busy += s["busy"]
        for v, n in s["versions"].items():
            versions[v] = versions.get(v, 0) + n
    return versions, busy



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--max-concurrent", type=int, default=16, help="the first wave (ROLLOUT_MAX_CONCURRENT)")
    parser.add_argument("--max-concurrent-share", type=float, default=0.05,
                        help="the in-flight window grows up to this share of the fleet (ROLLOUT_MAX_CONCURRENT_SHARE)")
    parser.add_argument("--workers", type=int, default=24, help="deploy threads of each fleet process")
    parser.add_argument("--fleet-processes", type=int, default=1,
                        help="processes the simulated nodes are spread over (0: in the platform's own process)")
    parser.add_argument("--listener", choices=("process", "thread"), default="process",
                        help="the rollout listener as its own process (manage.py rollout_listener, as deployed) or a thread here")
    parser.add_argument("--web-threads", type=int, default=16,
                        help="request threads of the platform's server (0: a new thread per request)")
    parser.add_argument("--canary-share", type=float, default=0.02)
    parser.add_argument("--database-url", default="",
                        help="a disposable PostgreSQL database to run on (postgres://...; it is migrated and filled); default a throwaway SQLite file")
    parser.add_argument("--timeout", type=float, default=180.0, help="give up after this many seconds")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    os.environ.update({"AIOT_VAR_DIR": str(work / "var"), "DATABASE_URL": args.database_url or f"sqlite:///{work / 'db.sqlite3'}",
                       "ROLLOUT_MAX_CONCURRENT": str(args.max_concurrent), "ROLLOUT_JITTER_S": "0.2",
                       "ROLLOUT_MAX_CONCURRENT_SHARE": str(args.max_concurrent_share),
                       "ROLLOUT_STEP_INTERVAL_S": "0.2", "MODEL_SIGNING_KEY_FILE": "", "LOG_LEVEL": "WARNING",
                       "REDIS_URL": "", "DJANGO_SETTINGS_MODULE": "web.settings"})
    mqtt_url = os.environ.get("MQTT_TEST_URL", "mqtt://127.0.0.1:1883")
    fleets: list = []
    listener_client = httpd = listener_proc = None
    stop = threading.Event()
    try:
        import django

        django.setup()
        from django.db import connections

        # Request threads keep their database connection, as PostgreSQL's settings do in production
        # (CONN_MAX_AGE=60); the SQLite default closes it after every request.
        connections.settings["default"]["CONN_MAX_AGE"] = 60
        from django.conf import settings
        from django.contrib.auth.models import Group, User
        from django.core.management import call_command

        from bench.wsgi_server import serve_platform

        call_command("migrate", verbosity=0)
        from edge_node.agent.deploy_sim import FleetProcess, SimDeployFleet
        from edge_node.models import EdgeNode
        from edge_node.rollouts import const
        from edge_node.rollouts.actions import approve_rollout, propose_rollout
        from edge_node.rollouts.driver import in_flight_limit
        from edge_node.rollouts.listener import RolloutListener
        from edge_node.rollouts.models import Rollout, RolloutNode
        from edge_node.rollouts.mqtt_client import PlatformMqtt
        from edge_node.rollouts.node_api import gauge
        from edge_node.rollouts.registry import register_anomaly_model
        from edge_node.services import node_secret_hash
        from edge_node.signing_keys import public_key_pem
        from tests.rollouts.models_for_tests import write_anomaly_model
        from twins.models import Site

        httpd = serve_platform(threads=args.web_threads)
        platform_url = f"http://127.0.0.1:{httpd.server_port}"
        settings.PLATFORM_PUBLIC_URL = platform_url

        run = uuid.uuid4().hex[:6]
        name = f"motor-anomaly-{run}"  # versions are immutable: a reused --database-url gets a new model name
        old_dir = write_anomaly_model(work / "models", name, "1", seed=1)
        new_dir = write_anomaly_model(work / "models", name, "2", seed=2)
        model = register_anomaly_model(new_dir)
        site = Site.objects.create(key=f"bench-{run}", name="Bench site")
        # One secret for all: setup stays short; every download still pays the server's check
        # (the keyed HMAC-SHA256 a real enrollment stores).
        secret = f"bench-secret-{run}"
        secret_hash = node_secret_hash(secret)
        secrets = {f"bench-{run}-{i:04d}": secret for i in range(args.nodes)}
        EdgeNode.objects.bulk_create([EdgeNode(node_id=n, site=site, secret_hash=secret_hash, online=True) for n in secrets])
        admin = Group.objects.get_or_create(name="admin")[0]
        proposer = User.objects.create_user(username=f"prop-{run}")
        approver = User.objects.create_user(username=f"appr-{run}")
        for u in (proposer, approver):
            u.groups.add(admin)

        t_setup = time.perf_counter()
        if args.fleet_processes <= 0:
            fleets.append(SimDeployFleet(mqtt_url, platform_url, public_key_pem(), secrets, old_dir, work / "nodes",
                                         workers=args.workers).start())
        else:
            ids = sorted(secrets)
            for k in range(args.fleet_processes):
                share = {n: secrets[n] for n in ids[k::args.fleet_processes]}
                fleets.append(FleetProcess(mqtt_url, platform_url, public_key_pem(), share, old_dir, work / f"nodes-{k}",
                                           workers=args.workers))
            for f in fleets:
                f.start()
        print(f"{args.nodes} simulated nodes on {model.name}@1 ready in {time.perf_counter() - t_setup:.1f} s "
              f"({'in this process' if args.fleet_processes <= 0 else f'{args.fleet_processes} fleet process(es)'})")
        listener = None
        if args.listener == "thread":
            listener_client = PlatformMqtt(mqtt_url, subscribe=True).start()
            listener = RolloutListener(listener_client, step_interval_s=0.2)
            threading.Thread(target=listener.run, args=(stop,), name="rollout-listener", daemon=True).start()
        else:
            listener_proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "rollout_listener", "--mqtt-url", mqtt_url],
                                             env={**os.environ, "PLATFORM_PUBLIC_URL": platform_url}, cwd=ROOT,
                                             stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
            if listener_proc.stdout.readline().strip() != "rollout listener running":
                raise SystemExit("the rollout listener did not start")
            # Keep reading its stdout so a full pipe never blocks it.
            threading.Thread(target=listener_proc.stdout.read, daemon=True).start()

        rollout = propose_rollout(proposer, model, site=site, canary_share=args.canary_share, max_p99_latency_ms=50.0,
                                  min_agreement=0.8)
        gauge.reset()
        allowed = in_flight_limit(args.nodes, args.nodes)  # the widest the window may grow
        backends = set(database_backends())
        cpu0 = cpu_by_role(httpd, fleets, listener_proc, backends)
        t0 = time.perf_counter()
        approve_rollout(approver, rollout)
        deadline = t0 + args.timeout
        seconds_to_all = None
        canary_done = None
        peak_deploying = 0  # nodes between taking the command and their final ack, sampled every 100 ms
        while time.perf_counter() < deadline:
            versions, busy = fleet_summary(fleets)
            peak_deploying = max(peak_deploying, busy)
            if canary_done is None and Rollout.objects.get(pk=rollout.pk).state in (const.PROMOTING, const.DONE):
                canary_done = time.perf_counter() - t0
            if versions.get("2", 0) == args.nodes:
                seconds_to_all = time.perf_counter() - t0
                break
            if Rollout.objects.get(pk=rollout.pk).state in (const.DONE, const.ROLLED_BACK):
                break  # finished with some nodes kept on the old model (a tolerated gate failure), or rolled back
            time.sleep(0.1)
        versions, _busy = fleet_summary(fleets)
        left = args.nodes - versions.get("2", 0)
        # The rollout turns "done" on the driver's next step after the last ack.
        done_at = None
        while time.perf_counter() < deadline:
            if Rollout.objects.get(pk=rollout.pk).state == const.DONE:
                done_at = time.perf_counter() - t0
                break
            time.sleep(0.05)
        state = Rollout.objects.get(pk=rollout.pk).state
        backends |= set(database_backends())  # connections opened during the run (their CPU before t0 is not subtracted)
        cpu1 = cpu_by_role(httpd, fleets, listener_proc, backends)
        cpu_ms_per_node = {role: round((cpu1[role] - cpu0[role]) * 1000.0 / args.nodes, 2) for role in cpu1}
        spans = sorted((u - s).total_seconds() for s, u in RolloutNode.objects.filter(rollout=rollout, sent_at__isnull=False)
                       .values_list("sent_at", "updated_at"))
        node_seconds = {"median": round(spans[len(spans) // 2], 3), "p90": round(spans[int(len(spans) * 0.9)], 3),
                        "mean_in_flight": round(sum(spans) / max(seconds_to_all or 1e-9, 1e-9), 1)} if spans else {}
        failed = list(RolloutNode.objects.filter(rollout=rollout, state=const.N_FAILED).values_list("node__node_id", "reason", "detail")[:5])
        if failed:
            print(f"nodes that kept the old model (first 5): {failed}")
        print(f"canary ({max(1, math.ceil(args.canary_share * args.nodes))} nodes) passed after {canary_done if canary_done is None else round(canary_done, 2)} s")
        print(f"all {args.nodes} nodes on the new version after {seconds_to_all if seconds_to_all is None else round(seconds_to_all, 2)} s "
              f"(rollout {state} after {done_at if done_at is None else round(done_at, 2)} s); left on the old version: {left}")
        print(f"downloads served: {gauge.total}; peak concurrent {gauge.peak} (allowed {allowed}); "
              + (f"acks handled {listener.acks}, listener failures {listener.failures}; " if listener else "")
              + f"most nodes deploying at once (sampled) {peak_deploying}")
        print(f"command -> final reply per node, seconds: {node_seconds}")
        print(f"CPU ms per node from approval to done (load average {os.getloadavg()[0]:.1f}): {cpu_ms_per_node}")
        print(json.dumps({"nodes": args.nodes, "seconds_to_all": None if seconds_to_all is None else round(seconds_to_all, 2),
                          "peak_concurrent_downloads": gauge.peak, "max_concurrent_allowed": allowed,
                          "left_on_old": left, "canary_seconds": None if canary_done is None else round(canary_done, 2),
                          "rollout_state": state, "downloads": gauge.total,
                          "peak_nodes_deploying": peak_deploying, "node_seconds": node_seconds, "cpu_ms_per_node": cpu_ms_per_node,
                          "load_average": round(os.getloadavg()[0], 1),
                          "fleet_processes": args.fleet_processes, "web_threads": args.web_threads}))
        return 0 if left == 0 else 1
    finally:
        stop.set()
        for f in fleets:
            f.stop()
        if listener_client is not None:
            listener_client.stop()
        if listener_proc is not None:
            listener_proc.terminate()  # SIGTERM: the command stops cleanly
            try:
                listener_proc.wait(15)
            except subprocess.TimeoutExpired:
                listener_proc.kill()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
