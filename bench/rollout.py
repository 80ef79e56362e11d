"""Rollout benchmark: 500 simulated nodes take a signed model through canary and promotion.

Run from the repository root: ``.venv/bin/python bench/rollout.py`` (needs the broker at
$MQTT_TEST_URL, default mqtt://127.0.0.1:1883). Prints its figures; the last line is JSON.

Everything is real except the gateways' hardware: a throwaway SQLite database and VAR_DIR, the
platform's Django app behind a threaded WSGI server (node-authenticated artifact downloads, scrypt
per request), the rollout listener over MQTT with the platform account, and 500 simulated nodes
in one process (edge_node.agent.deploy_sim: each node its own models dir and the agent's
DeployManager: download, size + SHA-256 + Ed25519 check, fsynced install, shadow run on live
windows, gated atomic switch). Measured: seconds from approval to every node running the new
version, and the most downloads the server served at once (must stay <= ROLLOUT_MAX_CONCURRENT).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--max-concurrent", type=int, default=16)
    parser.add_argument("--workers", type=int, default=24, help="deploy threads shared by the simulated nodes")
    parser.add_argument("--canary-share", type=float, default=0.02)
    parser.add_argument("--timeout", type=float, default=180.0, help="give up after this many seconds")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    os.environ.update({"AIOT_VAR_DIR": str(work / "var"), "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}",
                       "ROLLOUT_MAX_CONCURRENT": str(args.max_concurrent), "ROLLOUT_JITTER_S": "0.2",
                       "ROLLOUT_STEP_INTERVAL_S": "0.2", "MODEL_SIGNING_KEY_FILE": "", "LOG_LEVEL": "WARNING",
                       "REDIS_URL": "", "DJANGO_SETTINGS_MODULE": "web.settings"})
    mqtt_url = os.environ.get("MQTT_TEST_URL", "mqtt://127.0.0.1:1883")
    fleet = listener_client = httpd = None
    stop = threading.Event()
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth.models import Group, User
        from django.core.management import call_command

        from bench.wsgi_server import serve_platform

        call_command("migrate", verbosity=0)
        from edge_node.agent.deploy_sim import SimDeployFleet
        from edge_node.models import EdgeNode
        from edge_node.rollouts import const
        from edge_node.rollouts.actions import approve_rollout, propose_rollout
        from edge_node.rollouts.listener import RolloutListener
        from edge_node.rollouts.models import Rollout, RolloutNode
        from edge_node.rollouts.mqtt_client import PlatformMqtt
        from edge_node.rollouts.node_api import gauge
        from edge_node.rollouts.registry import register_anomaly_model
        from edge_node.services import node_secret_hash
        from edge_node.signing_keys import public_key_pem
        from tests.rollouts.models_for_tests import write_anomaly_model
        from twins.models import Site

        httpd = serve_platform()
        platform_url = f"http://127.0.0.1:{httpd.server_port}"
        settings.PLATFORM_PUBLIC_URL = platform_url

        old_dir = write_anomaly_model(work / "models", "motor-anomaly", "1", seed=1)
        new_dir = write_anomaly_model(work / "models", "motor-anomaly", "2", seed=2)
        model = register_anomaly_model(new_dir)
        run = uuid.uuid4().hex[:6]
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
        fleet = SimDeployFleet(mqtt_url, platform_url, public_key_pem(), secrets, old_dir, work / "nodes", workers=args.workers).start()
        print(f"{args.nodes} simulated nodes on {model.name}@1 ready in {time.perf_counter() - t_setup:.1f} s")
        listener_client = PlatformMqtt(mqtt_url, subscribe=True).start()
        listener = RolloutListener(listener_client, step_interval_s=0.2)
        threading.Thread(target=listener.run, args=(stop,), daemon=True).start()

        rollout = propose_rollout(proposer, model, site=site, canary_share=args.canary_share, max_p99_latency_ms=50.0,
                                  min_agreement=0.8)
        gauge.reset()
        t0 = time.perf_counter()
        approve_rollout(approver, rollout)
        deadline = t0 + args.timeout
        seconds_to_all = None
        canary_done = None
        peak_deploying = 0  # nodes between taking the command and their final ack, sampled every 50 ms
        while time.perf_counter() < deadline:
            peak_deploying = max(peak_deploying, sum(1 for n in fleet.nodes.values() if n.manager.busy > 0))
            versions = fleet.versions()
            if canary_done is None and Rollout.objects.get(pk=rollout.pk).state in (const.PROMOTING, const.DONE):
                canary_done = time.perf_counter() - t0
            if all(v == "2" for v in versions.values()):
                seconds_to_all = time.perf_counter() - t0
                break
            if Rollout.objects.get(pk=rollout.pk).state in (const.DONE, const.ROLLED_BACK):
                break  # finished with some nodes kept on the old model (a tolerated gate failure), or rolled back
            time.sleep(0.05)
        versions = fleet.versions()
        left = sum(1 for v in versions.values() if v != "2")
        # The rollout turns "done" on the driver's next step after the last ack.
        done_at = None
        while time.perf_counter() < deadline:
            if Rollout.objects.get(pk=rollout.pk).state == const.DONE:
                done_at = time.perf_counter() - t0
                break
            time.sleep(0.05)
        state = Rollout.objects.get(pk=rollout.pk).state
        failed = list(RolloutNode.objects.filter(rollout=rollout, state=const.N_FAILED).values_list("node__node_id", "reason", "detail")[:5])
        if failed:
            print(f"nodes that kept the old model (first 5): {failed}")
        print(f"canary ({max(1, round(args.canary_share * args.nodes))} nodes) passed after {canary_done if canary_done is None else round(canary_done, 2)} s")
        print(f"all {args.nodes} nodes on the new version after {seconds_to_all if seconds_to_all is None else round(seconds_to_all, 2)} s "
              f"(rollout {state} after {done_at if done_at is None else round(done_at, 2)} s); left on the old version: {left}")
        print(f"downloads served: {gauge.total}; peak concurrent {gauge.peak} (allowed {args.max_concurrent}); "
              f"acks handled {listener.acks}, listener failures {listener.failures}; "
              f"most nodes deploying at once (sampled) {peak_deploying}")
        print(json.dumps({"nodes": args.nodes, "seconds_to_all": None if seconds_to_all is None else round(seconds_to_all, 2),
                          "peak_concurrent_downloads": gauge.peak, "max_concurrent_allowed": args.max_concurrent,
                          "left_on_old": left, "canary_seconds": None if canary_done is None else round(canary_done, 2),
                          "rollout_state": state, "downloads": gauge.total,
                          "peak_nodes_deploying": peak_deploying}))
        return 0 if left == 0 else 1
    finally:
        stop.set()
        if fleet is not None:
            fleet.stop()
        if listener_client is not None:
            listener_client.stop()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
