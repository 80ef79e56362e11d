"""Abuse benchmark: real nodes download their model while strangers knock on every door.

Run from the repository root: ``.venv/bin/python bench/abuse.py``. Prints its figures; the last
line is JSON with ``real_p99_ms_quiet``, ``real_p99_ms_under_abuse``, ``abusers`` and
``abusers_throttled``.

Everything is real: a throwaway SQLite database and VAR_DIR, the cache in Redis when REDIS_URL
is set (else in-process memory), the platform's Django app behind a threaded WSGI server, 50
enrolled nodes (keyed secret hashes, as enrollment stores them) in a running rollout, each
downloading its signed artifact over HTTP. Phase 1 (quiet): the 50 nodes download, p99 taken.
Phase 2 (under abuse), the same downloads while, from their own loopback addresses
(127.0.x.y), abusers send 1,000 wrong-credential download requests (unknown node ids and wrong
secrets for real ids) and 200 failed logins (a password-guessing run on one account, from many
addresses). An abuser counts as throttled when the platform answered it 429 at least once.
The ratio of the two p99s is the figure (same run, same machine).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))



def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def request(port: int, method: str, path: str, *, source: str = "127.0.0.1", headers: dict | None = None, body: str | None = None) -> tuple[int, float]:
    """One request on its own connection from ``source``; (status, milliseconds)."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status, (time.perf_counter() - t0) * 1000.0
    finally:
        conn.close()


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--downloads", type=int, default=20, help="downloads per real node per phase")
    parser.add_argument("--bad-downloads", type=int, default=1000)
    parser.add_argument("--bad-logins", type=int, default=200)
    parser.add_argument("--download-abusers", type=int, default=50, help="addresses the bad downloads come from")
    parser.add_argument("--login-abusers", type=int, default=10, help="addresses the bad logins come from")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-abuse-"))
    os.environ.update({"AIOT_VAR_DIR": str(work / "var"), "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}", "MODEL_SIGNING_KEY_FILE": "",
                       "LOG_LEVEL": "ERROR", "DJANGO_SETTINGS_MODULE": "web.settings", "CACHE_KEY_PREFIX": f"bench-abuse-{uuid.uuid4().hex[:6]}"})
    httpd = None
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth.models import Group, User
        from django.core.management import call_command

        from bench.wsgi_server import serve_platform

        call_command("migrate", verbosity=0)
        from edge_node.models import AuditEvent, EdgeNode
        from edge_node.rollouts import const
        from edge_node.rollouts.actions import approve_rollout, propose_rollout
        from edge_node.rollouts.models import Rollout
        from edge_node.rollouts.registry import register_anomaly_model
        from edge_node.services import node_secret_hash
        from tests.rollouts.models_for_tests import write_anomaly_model
        from twins.models import Site

        run = uuid.uuid4().hex[:6]
        site = Site.objects.create(key=f"abuse-{run}", name="Abuse bench")
        secrets = {f"abuse-{run}-{i:03d}": f"secret-{run}-{i}-{uuid.uuid4().hex}" for i in range(args.nodes)}
        EdgeNode.objects.bulk_create([EdgeNode(node_id=n, site=site, secret_hash=node_secret_hash(s), online=True) for n, s in secrets.items()])
        model = register_anomaly_model(write_anomaly_model(work / "models", "motor-anomaly", "2", seed=2))
        admin = Group.objects.get_or_create(name="admin")[0]
        proposer, approver = User.objects.create_user(username=f"p-{run}"), User.objects.create_user(username=f"a-{run}")
        for u in (proposer, approver):
            u.groups.add(admin)
        User.objects.create_user(username="admin", password=f"real-pw-{uuid.uuid4().hex}")
        rollout = propose_rollout(proposer, model, site=site)
        approve_rollout(approver, rollout)
        Rollout.objects.filter(pk=rollout.pk).update(state=const.CANARY)  # every node may download

        httpd = serve_platform()
        port = httpd.server_port
        path = f"/api/models/{model.pk}/download"
        cache = "Redis" if settings.REDIS_URL else "in-process memory"
        print(f"{args.nodes} nodes, {args.downloads} downloads each per phase; throttle: {settings.THROTTLE_MAX_FAILURES} failures "
              f"in {settings.THROTTLE_WINDOW_S} s lock {settings.THROTTLE_LOCKOUT_S} s ({cache})")

        def real_downloads() -> tuple[list[float], int]:
            jobs = [n for _ in range(args.downloads) for n in secrets]
            with ThreadPoolExecutor(max_workers=10) as pool:
                results = list(pool.map(lambda n: request(port, "GET", path, headers={"Authorization": _basic(n, secrets[n])}), jobs))
            return [ms for _, ms in results], sum(1 for status, _ in results if status != 200)

        real_downloads()  # warm-up: imports, first connections
        quiet, quiet_errors = real_downloads()

        # The abusers: each its own loopback address.
        download_sources = [f"127.0.1.{i + 1}" for i in range(args.download_abusers)]
        login_sources = [f"127.0.2.{i + 1}" for i in range(args.login_abusers)]
        node_ids = list(secrets)
        bad_downloads = []
        for i in range(args.bad_downloads):
            user = node_ids[i % len(node_ids)] if i % 2 else f"ghost-{i}"
            bad_downloads.append((download_sources[i % len(download_sources)], user))
        bad_logins = [login_sources[i % len(login_sources)] for i in range(args.bad_logins)]
        answers: dict[str, list[int]] = {s: [] for s in download_sources + login_sources}
        lock = threading.Lock()

        def bad_download(job: tuple[str, str]) -> None:
            source, user = job
            status, _ = request(port, "GET", path, source=source, headers={"Authorization": _basic(user, "guess-" + uuid.uuid4().hex)})
            with lock:
                answers[source].append(status)

        def bad_login(source: str) -> None:
            # As a guessing script does it: fetch the form (CSRF cookie and token), post a guess.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
            try:
                conn.request("GET", "/login/")
                resp = conn.getresponse()
                page = resp.read().decode()
                cookie = resp.getheader("Set-Cookie", "").split(";", 1)[0]
                token = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
            finally:
                conn.close()
            body = urllib.parse.urlencode({"username": "admin", "password": "guess-" + uuid.uuid4().hex, "csrfmiddlewaretoken": token})
            status, _ = request(port, "POST", "/login/", source=source, body=body,
                                headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
            with lock:
                answers[source].append(status)

        abuse_done = threading.Event()

        def abuse() -> None:
            with ThreadPoolExecutor(max_workers=16) as pool:
                futures = [pool.submit(bad_download, j) for j in bad_downloads] + [pool.submit(bad_login, s) for s in bad_logins]
                for f in futures:
                    f.result()
            abuse_done.set()

        abuser = threading.Thread(target=abuse)
        t0 = time.perf_counter()
        abuser.start()
        under, under_errors = real_downloads()
        abuser.join()
        abuse_s = time.perf_counter() - t0
        throttled = sum(1 for statuses in answers.values() if 429 in statuses)
        lockouts = AuditEvent.objects.filter(action="throttle.lockout").count()
        statuses: dict[int, int] = {}
        for values in answers.values():
            for s in values:
                statuses[s] = statuses.get(s, 0) + 1
        load = os.getloadavg()
        q, u = p99(quiet), p99(under)
        print(f"quiet: {len(quiet)} real downloads, p99 {q:.1f} ms, errors {quiet_errors}")
        print(f"under abuse: {len(under)} real downloads, p99 {u:.1f} ms ({u / q:.2f}x quiet), errors {under_errors}; "
              f"abuse took {abuse_s:.1f} s")
        print(f"abusers: {len(answers)} addresses, {throttled} throttled (answered 429); answers {dict(sorted(statuses.items()))}; "
              f"lockouts audited {lockouts}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        print(json.dumps({"real_p99_ms_quiet": round(q, 2), "real_p99_ms_under_abuse": round(u, 2), "p99_ratio": round(u / q, 2),
                          "real_downloads_per_phase": len(quiet), "real_errors_under_abuse": under_errors,
                          "bad_downloads": args.bad_downloads, "bad_logins": args.bad_logins,
                          "abusers": len(answers), "abusers_throttled": throttled, "lockouts_audited": lockouts,
                          "answers": {str(k): v for k, v in sorted(statuses.items())}, "cache": cache, "load_avg_1m": round(load[0], 2)}))
        return 0 if throttled == len(answers) and under_errors == 0 else 1
    finally:
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
