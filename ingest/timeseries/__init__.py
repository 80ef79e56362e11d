"""The telemetry store: every dialect difference lives in this package.

Three shapes of one table ``ingest_telemetry (time, asset_id, metric_id, value)``:

- TimescaleDB: a hypertable (chunks of ``TELEMETRY_CHUNK_HOURS``), compression and retention
  policies reconciled with the settings, a 1-minute continuous aggregate that serves the
  dashboard's long ranges and the twins; ``time_bucket``. Used only when usable and decided by
  the database, never by the package alone (``store.py``).
- plain PostgreSQL: native range partitioning by time (one partition per
  ``TELEMETRY_PARTITION_DAYS``, created ahead by ``maintain``; a DEFAULT partition catches
  the rest so an insert never fails), retention by dropping whole partitions; ``date_bin``.
- SQLite (the embedded default): a plain table, time as epoch seconds (REAL).

Every shape buckets from one origin (``buckets.py``). Writes: binary COPY on PostgreSQL,
executemany on SQLite (``writes.py``). Reads (``queries.py``, ``incremental.py``) serve the
same index shape, (asset_id, metric_id, time), for "one asset's metric over a time range".
"""

from __future__ import annotations

from django.db import connection as _default_connection

from ingest.timeseries.buckets import BUCKET_ORIGIN, bucket_floor, bucket_floor_dt
from ingest.timeseries.incremental import InsertMark, NewReadings, has_insert_order, insert_mark, readings_since
from ingest.timeseries.queries import (
    Bucket,
    bucketed,
    bucketed_many,
    bucketed_metrics,
    count_rows,
    fetch_rows,
    latest_values,
    recent_readings,
    recent_rows_many,
    uses_minute_aggregate,
)
from ingest.timeseries.schema import WRITES, convert_to_hypertable, create_schema, create_write_log, drop_schema, maintain
from ingest.timeseries.store import TABLE, StoreError, choose_store, probe, store_info
from ingest.timeseries.writes import Row, upsert_latest, write_rows

__all__ = [
    "BUCKET_ORIGIN", "TABLE", "WRITES", "Bucket", "InsertMark", "NewReadings", "Row", "StoreError", "bucket_floor",
    "bucket_floor_dt", "bucketed", "bucketed_many", "bucketed_metrics", "choose_store", "convert_to_hypertable", "count_rows", "create_schema",
    "create_write_log", "dialect", "drop_schema", "fetch_rows", "has_insert_order", "insert_mark", "latest_values",
    "maintain", "probe", "readings_since", "recent_readings", "recent_rows_many", "store_info", "upsert_latest",
    "uses_minute_aggregate", "write_rows",
]


def dialect(connection=_default_connection) -> str:
    """'timescale', 'postgres' or 'sqlite': the store's shape (see store.py)."""
    return store_info(connection)[0]
