"""The REST API, exports and notifications under load (`make bench-api`).

On a scratch PostgreSQL database (BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/postgres:
a database is created and dropped), with 30 days of telemetry for 100 assets (2 metrics, one
reading per BENCH_API_STEP_S, default 60 s: 8.64 M rows, loaded with generate_series):

1. api_p99_ms: GET /api/v1/assets/<id>/series/ (24 h, 5-min buckets, both metrics) with a
   token, through the whole Django + DRF stack in process, for random assets; the baseline is
   the same query called directly (ingest.timeseries.queries.bucketed_metrics).
2. export: GET /api/v1/exports/telemetry.csv for the site and a range holding 1,000,000
   readings, the streamed body consumed chunk by chunk; time, this process's CPU time and RSS
   growth (peak sampled every 10 ms); the baseline is a bare COPY of the same rows to nowhere.
   The same rows as Parquet (exports/telemetry.parquet): export_parquet_*.
3. notifications: a real Celery worker (threads) over Redis (REDIS_URL), a real SMTP server
   (aiosmtpd) and a real webhook receiver; alerts opened by the alert engine one at a time
   (each alone in its coalescing window): time from the engine's commit to the email and to
   the webhook arriving (p99).
4. receiver down: the webhook receiver is stopped for BENCH_DOWN_S (60 s) while alerts keep
   opening; then started; every event sent must arrive (webhook_sent == webhook_delivered).

Last line: JSON with api_p99_ms, export_rows, export_s, export_rss_mb, email_p99_s,
webhook_p99_s, webhook_sent, webhook_delivered (and the baselines, ratios and load average).
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import psycopg  # noqa: E402

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DB_NAME = "aiot_bench_api"
ASSETS = int(os.environ.get("BENCH_API_ASSETS", "100"))
DAYS = int(os.environ.get("BENCH_API_DAYS", "30"))
STEP_S = int(os.environ.get("BENCH_API_STEP_S", "60"))
REQUESTS = int(os.environ.get("BENCH_API_REQUESTS", "300"))
EXPORT_ROWS = int(os.environ.get("BENCH_EXPORT_ROWS", "1000000"))
ALERTS = int(os.environ.get("BENCH_ALERTS", "30"))
DOWN_S = float(os.environ.get("BENCH_DOWN_S", "60"))
METRICS = ("winding_temp_c", "vib_rms")


def db_url(name: str) -> str:
    return urlunsplit(urlsplit(PG_URL)._replace(path=f"/{name}"))


def recreate_database() -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def drop_database() -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def setup_django() -> None:
    os.environ["DATABASE_URL"] = db_url(DB_NAME)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from web.gc_tuning import freeze_startup_heap

    freeze_startup_heap()  # as every long-running web process does once ready (web/asgi.py)


def load_fleet(now: datetime) -> dict:
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from ingest.timeseries.schema import maintain
    from twins.models import Asset, AssetType, Metric, Site

    site = Site.objects.create(key="bench", name="Bench works")
    asset_type = AssetType.objects.create(key="motor", name="Motor")
    metrics = [Metric.objects.create(asset_type=asset_type, key=k, label=k, min_value=-1e6, max_value=1e6) for k in METRICS]
    assets = [Asset.objects.create(key=f"motor-{i:03d}", name=f"Motor {i:03d}", site=site, asset_type=asset_type) for i in range(ASSETS)]
    user = User.objects.create_user("bench-fm", email="fm@example.org")
    user.groups.add(Group.objects.get_or_create(name="facility_manager")[0])
    site.members.add(user)
    maintain(now=now)
    start = now - timedelta(days=DAYS)
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        for a in assets:  # one statement per asset: progress and bounded transactions
            cur.execute(
                "INSERT INTO ingest_telemetry (time, asset_id, metric_id, value) "
                "SELECT t, %s, m, CASE WHEN m = %s THEN 60 + 15 * sin(extract(epoch FROM t) / 3600.0) ELSE 2 + random() END "
                "FROM generate_series(%s::timestamptz, %s::timestamptz - interval '1 second', make_interval(secs => %s)) AS t, unnest(%s::int[]) AS m",
                [a.id, metrics[0].id, start, now, STEP_S, [m.id for m in metrics]],
            )
        cur.execute("ANALYZE ingest_telemetry")
        cur.execute("SELECT count(*) FROM ingest_telemetry")
        rows = cur.fetchone()[0]
    print(f"loaded {rows:,} readings for {ASSETS} assets over {DAYS} days in {time.perf_counter() - t0:.1f} s", flush=True)
    return {"site": site, "assets": assets, "metrics": metrics, "user": user, "rows": rows, "start": start}


def p99(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]


def bench_series(fleet: dict, now: datetime) -> dict:
    from django.test import Client

    from api.tokens import create_token
    from ingest.timeseries.queries import bucketed_metrics

    key = create_token(fleet["user"], "bench")[1]
    client = Client(HTTP_AUTHORIZATION=f"Token {key}", HTTP_HOST="127.0.0.1")
    rng = random.Random(1)
    api_ms, base_ms = [], []
    start = now - timedelta(hours=24)
    q = urlencode({"start": start.isoformat(), "end": now.isoformat(), "bucket": 300})
    metric_ids = [m.id for m in fleet["metrics"]]
    for i in range(REQUESTS + 20):
        asset = rng.choice(fleet["assets"])
        t0 = time.perf_counter()
        r = client.get(f"/api/v1/assets/{asset.id}/series/?{q}")
        dt = (time.perf_counter() - t0) * 1000
        assert r.status_code == 200, r.content[:300]
        assert len(r.json()["series"][METRICS[0]]) in (288, 289)
        t0 = time.perf_counter()
        bucketed_metrics(asset.id, metric_ids, start, now, timedelta(seconds=300))
        db = (time.perf_counter() - t0) * 1000
        if i >= 20:  # warm-up
            api_ms.append(dt)
            base_ms.append(db)
    return {"api_p99_ms": round(p99(api_ms), 2), "api_median_ms": round(statistics.median(api_ms), 2),
            "api_query_p99_ms": round(p99(base_ms), 2), "api_query_median_ms": round(statistics.median(base_ms), 2), "api_overhead_ratio": round(p99(api_ms) / p99(base_ms), 2), "api_requests": len(api_ms)}


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def bench_export(fleet: dict) -> dict:
    from django.db import connection
    from django.test import Client

    from api.tokens import create_token

    per_step = ASSETS * len(METRICS)
    steps = EXPORT_ROWS // per_step
    end = fleet["start"] + timedelta(days=DAYS) - timedelta(hours=1)
    start = end - timedelta(seconds=steps * STEP_S)
    key = create_token(fleet["user"], "bench-export")[1]
    client = Client(HTTP_AUTHORIZATION=f"Token {key}", HTTP_HOST="127.0.0.1")
    url = "/api/v1/exports/telemetry.csv?" + urlencode({"site": fleet["site"].id, "start": start.isoformat(), "end": end.isoformat()})
    csv = _timed_download(client, url)
    rows = csv["lines"] - 1
    parquet = _timed_download(client, url.replace("telemetry.csv", "telemetry.parquet"))
    # Baseline: the bare COPY of the same rows, bytes read and dropped.
    t0 = time.perf_counter()
    connection.ensure_connection()
    with connection.connection.cursor() as cur, cur.copy(
        "COPY (SELECT time, asset_id, metric_id, value FROM ingest_telemetry WHERE time >= %s AND time < %s ORDER BY time) TO STDOUT WITH (FORMAT csv)"
        .replace("%s", "'{}'").format(start.isoformat(), end.isoformat())
    ) as copy:
        for _ in copy:
            pass
    copy_s = time.perf_counter() - t0
    return {"export_rows": rows, "export_s": round(csv["s"], 2), "export_cpu_s": round(csv["cpu_s"], 2), "export_rss_mb": round(csv["rss_mb"], 1),
            "export_mb": round(csv["bytes"] / 2**20, 1), "export_copy_baseline_s": round(copy_s, 2), "export_ratio": round(csv["s"] / copy_s, 2),
            "export_parquet_s": round(parquet["s"], 2), "export_parquet_cpu_s": round(parquet["cpu_s"], 2), "export_parquet_rss_mb": round(parquet["rss_mb"], 1),
            "export_parquet_mb": round(parquet["bytes"] / 2**20, 1)}


def _timed_download(client, url: str) -> dict:
    """GET a streamed export, consuming it chunk by chunk: wall time, this process's CPU time,
    RSS growth (peak sampled every 10 ms), bytes and lines."""
    import gc

    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.01)

    gc.collect()
    rss0 = _rss_mb()
    peak[0] = rss0
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0, t0 = time.process_time(), time.perf_counter()
    response = client.get(url)
    assert response.status_code == 200, response.content[:300]
    lines = nbytes = 0
    for chunk in response.streaming_content:
        lines += chunk.count(b"\n")
        nbytes += len(chunk)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    stop.set()
    sampler.join()
    return {"s": elapsed, "cpu_s": cpu, "rss_mb": peak[0] - rss0, "bytes": nbytes, "lines": lines}


def start_worker(smtp_port: int) -> subprocess.Popen:
    from tests.helpers import purge_celery_queue

    purge_celery_queue(os.environ["REDIS_URL"])
    env = dict(os.environ, DATABASE_URL=db_url(DB_NAME), LOG_LEVEL="WARNING", EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(smtp_port),
               PLATFORM_PUBLIC_URL="https://aiot.example.org")
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "EMAIL_BACKEND"):
        env.pop(name, None)
    cmd = [str(ROOT / ".venv/bin/celery"), "-A", "web", "worker", "-P", "threads", "-c", "8", "--without-gossip", "--without-mingle",
           "--without-heartbeat", "-n", f"bench-notify-{uuid.uuid4().hex[:6]}@%h", "--loglevel", "WARNING"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


def bench_notifications(fleet: dict) -> dict:
    from django.conf import settings

    from notify.models import Event, Subscription
    from tests.notify.receivers import SmtpServer, WebhookReceiver
    from twins.alerting import AlertEngine
    from twins.models import Alert, AlertRule

    assert str(settings.CELERY_BROKER_URL).startswith("redis"), "needs REDIS_URL (a real Celery broker)"
    vib = fleet["metrics"][1]
    AlertRule.objects.create(metric=vib, warning_above=7.1, critical_above=11.0, min_duration_s=0, hysteresis=0.5)
    user = fleet["user"]
    receiver = WebhookReceiver().start()
    Subscription.objects.create(user=user, name="mail", channel="email", target="fm@example.org")
    hook = Subscription.objects.create(user=user, name="cmms", channel="webhook", target=receiver.url)
    engine = AlertEngine(broadcast=False)
    with SmtpServer() as smtp:
        worker = start_worker(smtp.port)
        try:
            time.sleep(3.0)  # the worker's start
            email_s, webhook_s = [], []
            assets = fleet["assets"]
            # The first alert warms the worker up (database connections, SMTP and HTTP code
            # paths): not counted, as the API's first requests are not.
            for i in range(-1, ALERTS):
                asset = assets[i % len(assets)]
                n_mail, n_hook = len(smtp.inbox), len(receiver.received)
                t0 = time.time()
                engine.process([(datetime.now(UTC), asset.id, vib.id, 12.0)])
                wait_for(lambda n=n_mail: len(smtp.inbox) > n, 30, "an email")
                wait_for(lambda n=n_hook: len(receiver.received) > n, 30, "a webhook")
                if i >= 0:
                    email_s.append(smtp.inbox[n_mail].at - t0)
                    webhook_s.append(receiver.received[n_hook].at - t0)
                engine.process([(datetime.now(UTC), asset.id, vib.id, 2.0)])  # clears (told too)
                wait_for(lambda n=n_mail: len(smtp.inbox) > n + 1, 30, "the all-clear email")
                wait_for(lambda n=n_hook: len(receiver.received) > n + 1, 30, "the all-clear webhook")
            # The receiver down for DOWN_S while alerts keep coming.
            receiver.stop()
            before = {e for h in receiver.received for e in (x["id"] for x in h.json["events"])}
            t_down = time.monotonic()
            k = 0
            while time.monotonic() - t_down < DOWN_S:
                asset = assets[(ALERTS + k) % len(assets)]
                engine.process([(datetime.now(UTC), asset.id, vib.id, 12.0 + k % 3)])
                engine.process([(datetime.now(UTC) + timedelta(seconds=1), asset.id, vib.id, 2.0)])
                k += 1
                time.sleep(2.0)
            receiver.start()
            sent_ids = set(Event.objects.filter(kind__startswith="alert.").values_list("id", flat=True))

            def delivered() -> set[int]:
                return {x["id"] for h in list(receiver.received) for x in h.json["events"]}

            deadline = time.monotonic() + 400
            while time.monotonic() < deadline and not sent_ids <= delivered():
                time.sleep(0.5)
            got = delivered()
            recovery_s = time.monotonic() - t_down - DOWN_S
            opened = Alert.objects.count()
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
            receiver.stop()
    return {
        "email_p99_s": round(p99(email_s), 3), "email_median_s": round(statistics.median(email_s), 3),
        "webhook_p99_s": round(p99(webhook_s), 3), "webhook_median_s": round(statistics.median(webhook_s), 3),
        "latency_alerts": len(email_s), "coalesce_window_s": settings.NOTIFY_COALESCE_S,
        "webhook_sent": len(sent_ids), "webhook_delivered": len(sent_ids & got), "webhook_down_s": DOWN_S,
        "webhook_events_while_down": len(sent_ids - before), "webhook_recovery_s": round(recovery_s, 1), "alerts_opened": opened,
        "hook_subscription": hook.id,
    }


def main() -> None:
    load = os.getloadavg()
    recreate_database()
    try:
        setup_django()
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        fleet = load_fleet(now)
        out: dict = {"rows_loaded": fleet["rows"], "assets": ASSETS, "days": DAYS, "step_s": STEP_S}
        out.update(bench_series(fleet, now))
        print(json.dumps(out), flush=True)
        out.update(bench_export(fleet))
        print(json.dumps(out), flush=True)
        out.update(bench_notifications(fleet))
        out["targets"] = {"api_p99_ms": 50, "export_s": 5, "export_rss_mb": 50, "email_p99_s": 2, "webhook_p99_s": 2}
        out["loadavg_start"] = [round(x, 2) for x in load]
        out["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        out["cpus"] = os.cpu_count()
        out.pop("hook_subscription", None)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
