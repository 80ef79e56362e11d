"""The TimescaleDB store on a real TimescaleDB build (the harness): migrations, policies kept in
step with the settings, compressed chunks, one bucketing origin, the minute aggregate."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import transaction

from ingest import timeseries
from ingest.timeseries import store, timescale
from ingest.timeseries.buckets import bucket_floor

pytestmark = [pytest.mark.timescale, pytest.mark.slow]

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def migrated(ts, django_db_blocker):
    from django.core.management import call_command
    from django.test import override_settings

    with override_settings(TELEMETRY_COPY=False), django_db_blocker.unblock():
        call_command("migrate", database="timescale", verbosity=0)
    return ts


def write(conn, rows) -> None:
    with transaction.atomic(using=conn.alias):
        timeseries.write_rows(rows, connection=conn)


def jobs(conn) -> dict[str, dict]:
    with conn.cursor() as cur:
        found = timescale._jobs(cur)
        out = {}
        for name, (_id, config, _schedule) in found.items():
            out[name] = {}
            for key, value in config.items():
                if isinstance(value, str) and key.endswith(("_after", "_offset")):
                    cur.execute("SELECT EXTRACT(EPOCH FROM %s::interval)", [value])
                    value = timedelta(seconds=float(cur.fetchone()[0]))
                out[name][key] = value
        return out


def fetch(conn, sql, params=()):
    with conn.cursor() as cur:
        cur.execute(sql, list(params))
        return cur.fetchall()


def test_a_fresh_migrate_makes_a_hypertable_with_our_index_policies_and_the_minute_aggregate(migrated, no_copy):
    conn = migrated
    assert store.store_info(conn) == ("timescale", "community")
    assert fetch(conn, "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables") == [("ingest_telemetry", True)]
    # no default (time DESC) index: every query filters by asset and metric first
    assert [i for (i,) in fetch(conn, "SELECT indexname FROM pg_indexes WHERE tablename = 'ingest_telemetry'")] == ["ingest_telemetry_asset_metric_time"]
    assert fetch(conn, "SELECT time_interval FROM timescaledb_information.dimensions WHERE hypertable_name = 'ingest_telemetry'") == [(timedelta(days=1),)]
    policies = jobs(conn)
    assert policies["policy_compression"]["compress_after"] == timedelta(days=31)  # past the 30-day late window
    assert policies["policy_retention"]["drop_after"] == timedelta(days=90)
    assert policies["policy_refresh_continuous_aggregate"]["start_offset"] == timedelta(days=31)
    assert fetch(conn, "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates") == [("ingest_telemetry_1m", False)]


def test_a_rerun_changes_nothing_and_changed_settings_reach_timescaledb(migrated, no_copy, settings):
    from django.core.management import call_command

    conn = migrated
    call_command("migrate", database="timescale", verbosity=0)
    assert timeseries.maintain(conn)["changes"] == []
    names = ("TELEMETRY_RETENTION_DAYS", "TELEMETRY_CHUNK_HOURS", "INGEST_MAX_PAST_SECONDS", "TELEMETRY_COMPRESS_AFTER_DAYS")
    before = {name: getattr(settings, name) for name in names}
    settings.TELEMETRY_RETENTION_DAYS = 30
    settings.TELEMETRY_CHUNK_HOURS = 12
    settings.INGEST_MAX_PAST_SECONDS = 86400
    settings.TELEMETRY_COMPRESS_AFTER_DAYS = 5
    try:
        changes = timeseries.maintain(conn)["changes"]
        assert len(changes) == 4, changes  # chunk interval, compression, retention, aggregate refresh
        policies = jobs(conn)
        assert policies["policy_retention"]["drop_after"] == timedelta(days=30)
        assert policies["policy_compression"]["compress_after"] == timedelta(days=5)
        assert policies["policy_refresh_continuous_aggregate"]["start_offset"] == timedelta(days=2)
        assert fetch(conn, "SELECT time_interval FROM timescaledb_information.dimensions WHERE hypertable_name = 'ingest_telemetry'") == [(timedelta(hours=12),)]
        assert timeseries.maintain(conn)["changes"] == []
    finally:
        for name, value in before.items():
            setattr(settings, name, value)
        timeseries.maintain(conn)
    assert jobs(conn)["policy_retention"]["drop_after"] == timedelta(days=90)


def test_rows_across_days_and_into_a_compressed_chunk_are_all_read_back(migrated, no_copy):
    conn = migrated
    rows = [(NOW - timedelta(days=d, minutes=m), 101, 1, float(d * 1000 + m)) for d in range(10) for m in range(0, 60, 7)]
    write(conn, rows)
    compressed = fetch(
        conn,
        "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('ingest_telemetry', older_than => %s) c",
        [NOW - timedelta(days=3)],
    )
    assert compressed, "no chunk was compressed; the test proves nothing"
    late = [(NOW - timedelta(days=6, minutes=30, seconds=s), 101, 1, -float(s)) for s in range(5)]
    write(conn, late)  # into a compressed chunk
    assert fetch(conn, "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'ingest_telemetry' AND is_compressed")[0][0] >= 1
    got = timeseries.fetch_rows(101, 1, connection=conn)
    assert sorted((t, v) for t, v in got) == sorted((t, v) for t, _a, _m, v in rows + late)
    assert timeseries.count_rows(101, connection=conn) == len(rows) + len(late)


STEPS = [1, 7, 60, 300, 5400, 3600, 86400, 7 * 86400]


def python_buckets(rows, step: float):
    out = defaultdict(list)
    for t, _a, _m, v in rows:
        out[bucket_floor(t.timestamp(), step)].append(v)
    return {b: (min(vs), sum(vs) / len(vs), max(vs), len(vs)) for b, vs in sorted(out.items())}


def same_buckets(got, expected) -> None:
    assert [b.start.timestamp() for b in got] == list(expected)
    for b in got:
        lo, avg, hi, n = expected[b.start.timestamp()]
        assert (b.min, b.max, b.count) == (lo, hi, n)
        assert math.isclose(b.avg, avg, rel_tol=1e-12, abs_tol=1e-9)


def test_every_dialect_and_python_give_the_same_buckets(migrated, no_copy):
    """SQLite (an in-memory alias), the suite's database (PostgreSQL in CI), TimescaleDB (the
    harness; whole minutes from the aggregate), and Python: the same buckets for 1 s ... 7 d
    and odd steps, from one origin."""
    from django.db import connection as default
    from django.db import connections

    conn = migrated
    ASSET = 2_000_000_202  # no asset of the suite's database has this id
    connections.settings["lite"] = connections.configure_settings(
        {"default": dict(connections.settings["default"]), "lite": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    )["lite"]
    lite = connections["lite"]
    try:
        timeseries.create_schema(lite)
        rng = np.random.default_rng(3)
        start = NOW - timedelta(days=20)
        seconds = np.sort(rng.uniform(0, 20 * 86400, 900))
        rows = [(start + timedelta(seconds=float(s)), ASSET, 2, float(np.round(rng.normal(50, 10), 3))) for s in seconds]
        for c in (conn, lite, default):
            write(c, rows)
        lo, hi = start + timedelta(seconds=13.5), NOW - timedelta(seconds=41.25)  # edges not on a minute
        inside = [r for r in rows if lo <= r[0] < hi]
        for step in STEPS:
            expected = python_buckets(inside, step)
            for c in (lite, default, conn):
                got = timeseries.bucketed(ASSET, 2, lo, hi, timedelta(seconds=step), connection=c)
                try:
                    same_buckets(got, expected)
                except AssertionError as exc:
                    raise AssertionError(f"{timeseries.dialect(c)}, step {step} s: {exc}") from None
        assert timeseries.uses_minute_aggregate(conn, timedelta(minutes=5))
    finally:
        with default.cursor() as cur:  # the suite's database is shared with other tests
            cur.execute("DELETE FROM ingest_telemetry WHERE asset_id = %s", [ASSET])
        lite.close()
        del connections["lite"]
        del connections.settings["lite"]


def test_the_materialized_minute_aggregate_gives_the_raw_answers(migrated, no_copy):
    conn = migrated
    rows = [(NOW - timedelta(hours=h, seconds=s), 303, 3, float(h * 10 + s % 17)) for h in range(0, 30) for s in range(0, 3600, 45)]
    write(conn, rows)
    with conn.cursor() as cur:
        cur.execute("CALL refresh_continuous_aggregate('ingest_telemetry_1m', %s, %s)", [NOW - timedelta(days=2), NOW - timedelta(minutes=5)])
    assert fetch(conn, "SELECT count(*) FROM ingest_telemetry_1m WHERE asset_id = 303")[0][0] > 1000  # materialized
    for span, step in ((timedelta(hours=24), timedelta(minutes=5)), (timedelta(days=7), timedelta(minutes=30))):
        lo, hi = NOW - span + timedelta(seconds=7), NOW + timedelta(seconds=1)
        from_aggregate = timeseries.bucketed(303, 3, lo, hi, step, connection=conn)
        raw = timeseries.queries._bucketed_raw("timescale", 303, [3], lo, hi, step, conn)[3]
        assert [(b.start, b.min, b.max, b.count) for b in from_aggregate] == [(b.start, b.min, b.max, b.count) for b in raw]
        assert all(math.isclose(a.avg, r.avg, rel_tol=1e-12) for a, r in zip(from_aggregate, raw, strict=True))
    # the twins' per-bucket averages: minute-aligned windows come from the aggregate too
    end = datetime.fromtimestamp(bucket_floor(NOW.timestamp(), 300), UTC)
    agg = timeseries.recent_rows_many([303], [3], end - timedelta(hours=10), end, bucket=timedelta(minutes=5), connection=conn)
    raw = {303: (b := timeseries.queries._bucketed_raw("timescale", 303, [3], end - timedelta(hours=10), end, timedelta(minutes=5), conn)[3])}
    assert list(agg[303][0]) == [x.start.timestamp() for x in raw[303]]
    assert np.allclose(agg[303][1][:, 0], [x.avg for x in b], rtol=1e-12)


def test_incremental_reads_equal_a_full_read_over_compressed_chunks(migrated, no_copy):
    conn = migrated
    first = [(NOW - timedelta(days=d, hours=1, seconds=s), 404, 4, float(d + s)) for d in range(8) for s in range(0, 600, 60)]
    write(conn, first)
    fetch(conn, "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('ingest_telemetry', older_than => %s) c",
          [NOW - timedelta(days=4)])
    mark = timeseries.insert_mark(conn)
    new = [(NOW - timedelta(minutes=m), 404, 4, 1000.0 + m) for m in range(5)]
    late = [(NOW - timedelta(days=6, minutes=7), 404, 4, -5.0)]  # into a compressed chunk
    write(conn, new + late)
    since = timeseries.readings_since(mark, [404], [4], connection=conn)
    assets, start_s = since.replaces
    assert list(assets) == [404]
    got = set(zip(*(a.tolist() for a in since.readings), strict=True))
    full = {(404, 4, t.timestamp(), v) for t, v in timeseries.fetch_rows(404, 4, connection=conn) if t.timestamp() >= start_s}
    assert got == full
    assert {(404, 4, t.timestamp(), v) for t, _a, _m, v in new + late} <= got
