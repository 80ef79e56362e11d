"""What the 1-minute continuous aggregate saves, on the TimescaleDB harness.

One asset with two metrics at 1 Hz for 7 days (1.2 million readings) in a hypertable on the
harness (PGlite with TimescaleDB 2.23.0-dev: a real TimescaleDB build, in WebAssembly, so
absolute times are slower than a native server; the rows read are what they would be).
Measured: the asset page's 7-day chart (30-minute buckets) and a twin refresh's window (30
one-minute rows per metric), each read raw and through the aggregate (materialized), with the
rows each read touches and the median time of 3 runs. Last line JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import TimescaleHarness  # noqa: E402

DAYS = 7
METRICS = (1, 2)
ASSET = 1


def median_s(fn, repeats: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    why = TimescaleHarness.missing()
    if why:
        sys.exit(f"bench-timescale {why}")
    os.environ.setdefault("AIOT_VAR_DIR", tempfile.mkdtemp(prefix="bench-timescale-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "web.settings"
    os.environ["TELEMETRY_COPY"] = "0"  # COPY FROM STDIN crashes the harness
    harness = TimescaleHarness()
    harness.start()
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        from ingest import timeseries
        from ingest.timeseries import queries

        config = {"ENGINE": "django.db.backends.postgresql", "NAME": "postgres", "USER": "postgres", "PASSWORD": "postgres",
                  "HOST": "127.0.0.1", "PORT": str(harness.port), "OPTIONS": {"sslmode": "disable"}}
        connections.settings["ts"] = connections.configure_settings({"default": dict(connections.settings["default"]), "ts": config})["ts"]
        conn = connections["ts"]
        call_command("migrate", database="ts", verbosity=0)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        start = time.perf_counter()
        with conn.cursor() as cur:
            for metric in METRICS:
                cur.execute(
                    "INSERT INTO ingest_telemetry (time, asset_id, metric_id, value) "
                    "SELECT %s - (s || ' seconds')::interval, %s, %s, 20 + 5 * sin(s / 3600.0) FROM generate_series(1, %s) s",
                    [now, ASSET, metric, DAYS * 86400],
                )
            cur.execute("CALL refresh_continuous_aggregate('ingest_telemetry_1m', %s, %s)", [now - timedelta(days=DAYS + 1), now])
        loaded_s = time.perf_counter() - start
        readings = timeseries.count_rows(ASSET, connection=conn)
        print(f"{readings:,} readings loaded and the aggregate refreshed in {loaded_s:.1f} s")

        def rows_in(table: str, column: str, lo: datetime, hi: datetime, metrics=(METRICS[0],)) -> int:
            with conn.cursor() as cur:
                cur.execute(f"SELECT count(*) FROM {table} WHERE asset_id = %s AND metric_id = ANY(%s) AND {column} >= %s AND {column} < %s",
                            [ASSET, list(metrics), lo, hi])
                return cur.fetchone()[0]

        lo, hi, step = now - timedelta(days=DAYS), now, timedelta(minutes=30)
        raw_s, raw = median_s(lambda: queries._bucketed_raw("timescale", ASSET, [METRICS[0]], lo, hi, step, conn)[METRICS[0]])
        agg_s, agg = median_s(lambda: timeseries.bucketed(ASSET, METRICS[0], lo, hi, step, connection=conn))
        assert [(b.start, b.count) for b in raw] == [(b.start, b.count) for b in agg]
        chart = {"buckets": len(agg), "raw_rows_read": rows_in("ingest_telemetry", "time", lo, hi),
                 "aggregate_rows_read": rows_in("ingest_telemetry_1m", "bucket", lo, hi),
                 "raw_ms": round(raw_s * 1000, 1), "aggregate_ms": round(agg_s * 1000, 1)}
        print(f"7-day chart: {chart['raw_rows_read']:,} rows read raw in {chart['raw_ms']} ms; "
              f"{chart['aggregate_rows_read']:,} through the aggregate in {chart['aggregate_ms']} ms")

        end = now - timedelta(minutes=5)
        t_lo, minute = end - timedelta(minutes=30), timedelta(minutes=1)
        raw_s, _ = median_s(lambda: queries._bucketed_raw("timescale", ASSET, list(METRICS), t_lo, end, minute, conn))
        agg_s, got = median_s(lambda: timeseries.recent_rows_many([ASSET], list(METRICS), t_lo, end, bucket=minute, connection=conn))
        twin = {"rows": len(got[ASSET][0]), "raw_rows_read": rows_in("ingest_telemetry", "time", t_lo, end, METRICS),
                "aggregate_rows_read": rows_in("ingest_telemetry_1m", "bucket", t_lo, end, METRICS),
                "raw_ms": round(raw_s * 1000, 1), "aggregate_ms": round(agg_s * 1000, 1)}
        print(f"twin window (30 one-minute rows x {len(METRICS)} metrics): {twin['raw_rows_read']:,} rows read raw in "
              f"{twin['raw_ms']} ms; {twin['aggregate_rows_read']:,} through the aggregate in {twin['aggregate_ms']} ms")
        conn.close()
        print(json.dumps({"readings": readings, "chart_7d": chart, "twin_window": twin}))
    finally:
        harness.stop()


if __name__ == "__main__":
    main()
