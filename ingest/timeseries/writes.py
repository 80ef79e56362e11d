"""Writing telemetry: binary COPY on PostgreSQL and TimescaleDB, executemany on SQLite."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.conf import settings
from django.db import connection as default_connection

from ingest.sql_chunks import chunked
from ingest.timeseries.schema import WRITES
from ingest.timeseries.store import TABLE

Row = tuple[datetime, int, int, float]  # (time, asset_id, metric_id, value)


def write_rows(rows: Sequence[Row], connection=default_connection) -> int:
    """Store rows in the current transaction: binary COPY on PostgreSQL (``TELEMETRY_COPY=0``:
    one multi-row INSERT per batch instead, for servers where COPY cannot be used), executemany
    on SQLite."""
    if not rows:
        return 0
    if connection.vendor == "sqlite":
        with connection.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {TABLE} (time, asset_id, metric_id, value) VALUES (%s, %s, %s, %s)",
                [(t.timestamp(), a, m, v) for t, a, m, v in rows],
            )
        return len(rows)
    connection.ensure_connection()
    with connection.connection.cursor() as cur:
        if settings.TELEMETRY_COPY:
            with cur.copy(f"COPY {TABLE} (time, asset_id, metric_id, value) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["timestamptz", "int4", "int4", "float8"])
                write_row = copy.write_row
                for row in rows:
                    write_row(row)
        else:
            cur.execute(
                f"INSERT INTO {TABLE} (time, asset_id, metric_id, value) "
                "SELECT * FROM unnest(%s::timestamptz[], %s::integer[], %s::integer[], %s::double precision[])",
                [list(col) for col in zip(*rows, strict=True)],
            )
        # After the rows (same transaction, or a later one): a reader whose mark predates this
        # write's transaction sees it in the log (readings_since).
        cur.execute(f"INSERT INTO {WRITES} (min_time, assets) VALUES (%s, %s)", [min(r[0] for r in rows), sorted({r[1] for r in rows})])
    return len(rows)


def upsert_latest(latest: dict[tuple[int, int], tuple[datetime, float]], connection=default_connection) -> None:
    """One statement for many (asset, metric) latest values; an older reading never wins.
    Keys in a fixed order, so two workers updating the same assets cannot deadlock."""
    if not latest:
        return
    with connection.cursor() as cur:
        for chunk in chunked(sorted(latest.items()), 4, connection):
            params: list = []
            for (asset_id, metric_id), (ts, value) in chunk:
                params.extend((asset_id, metric_id, value, ts))
            cur.execute(
                f"INSERT INTO ingest_latestvalue (asset_id, metric_id, value, ts) VALUES {', '.join(['(%s, %s, %s, %s)'] * len(chunk))} "
                "ON CONFLICT (asset_id, metric_id) DO UPDATE SET value = excluded.value, ts = excluded.ts "
                "WHERE ingest_latestvalue.ts <= excluded.ts",
                params,
            )
