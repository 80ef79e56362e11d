"""A partitioned store on a server that has TimescaleDB stays a partitioned store (the table's
shape decides, not the extension) until an operator converts it; the conversion keeps every
row. On a fresh harness of its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction

from ingest import timeseries
from ingest.timeseries import store, timescale

pytestmark = [pytest.mark.timescale, pytest.mark.slow]

NOW = datetime.now(UTC).replace(microsecond=0)


def write(conn, rows) -> None:
    with transaction.atomic(using=conn.alias):
        timeseries.write_rows(rows, connection=conn)


def count(conn, sql) -> int:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def test_a_partitioned_store_stays_postgresql_beside_the_extension_until_converted(ts, no_copy, capsys):
    from django.core.management import call_command

    conn = ts
    assert timeseries.create_schema(conn, use_timescale=False) == "postgres"  # e.g. made before TimescaleDB came
    assert count(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'") == 1
    store.forget(conn)
    assert store.store_info(conn) == ("postgres", "")  # the table's shape decides
    assert count(conn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'ingest_telemetry'::regclass") > 30  # partitions ahead
    rows = [(NOW - timedelta(days=d, minutes=m), 7, 1, float(d * 100 + m)) for d in range(5) for m in range(0, 60, 5)]
    write(conn, rows)
    assert count(conn, "SELECT count(*) FROM ingest_telemetry_default") == 0  # every row found its partition
    call_command("telemetry_store", database="timescale", convert_to_timescale=True)
    out = capsys.readouterr().out
    assert f"converted: {len(rows):,} rows moved" in out and "telemetry store: timescale (community edition)" in out
    assert store.store_info(conn) == ("timescale", "community")
    assert sorted(timeseries.fetch_rows(7, 1, connection=conn)) == sorted((t, v) for t, _a, _m, v in rows)
    assert count(conn, "SELECT count(*) FROM timescaledb_information.continuous_aggregates WHERE view_name = 'ingest_telemetry_1m'") == 1
    with conn.cursor() as cur:
        assert {name for name in timescale._jobs(cur)} >= {"policy_compression", "policy_retention", "policy_refresh_continuous_aggregate"}


def test_the_apache_edition_drops_expired_chunks_itself(ts, no_copy):
    conn = ts
    old = [(NOW - timedelta(days=100, hours=h), 8, 1, 1.0) for h in range(3)]
    recent = [(NOW - timedelta(days=1, hours=h), 8, 1, 2.0) for h in range(3)]
    write(conn, old + recent)
    assert timescale.drop_expired_chunks(conn) >= 1
    assert [v for _t, v in timeseries.fetch_rows(8, 1, connection=conn)] == [2.0, 2.0, 2.0]
