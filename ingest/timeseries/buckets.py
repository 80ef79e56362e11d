"""One bucketing origin for every store and for Python.

Buckets of ``step`` seconds start at ``BUCKET_ORIGIN + k * step``. The origin is
2000-01-03 00:00 UTC, a Monday and TimescaleDB's own default for ``time_bucket``: weekly
buckets start on Mondays, and every step that divides a day (1 s ... 1 d) gives the same
buckets as midnight-aligned ones. SQLite, ``date_bin`` (PostgreSQL), ``time_bucket``
(TimescaleDB), the minute aggregate and Python all use it, so the same query gives the same
buckets everywhere, also for weekly or odd steps (7 s, 90 min).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

BUCKET_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
BUCKET_ORIGIN_EPOCH = BUCKET_ORIGIN.timestamp()  # 946,857,600
BUCKET_ORIGIN_SQL = "TIMESTAMPTZ '2000-01-03 00:00:00+00'"


def bucket_floor(ts: float, step_s: float) -> float:
    """The start (epoch seconds) of the bucket holding ``ts``."""
    if step_s <= 0:
        raise ValueError("bucket must be positive")
    return BUCKET_ORIGIN_EPOCH + math.floor((ts - BUCKET_ORIGIN_EPOCH) / step_s) * step_s


def bucket_floor_dt(when: datetime, step: timedelta) -> datetime:
    return datetime.fromtimestamp(bucket_floor(when.timestamp(), step.total_seconds()), UTC)


def bucket_sql(shape: str, step: timedelta, epoch: bool = False) -> tuple[str, list]:
    """SQL for the start of the bucket holding ``time``, and its parameters.

    SQLite stores epoch seconds: the result is epoch seconds. PostgreSQL and TimescaleDB give
    a timestamptz, or with ``epoch`` its epoch seconds as a double. Readings are never before
    the origin (retention keeps months, not decades), so SQLite's truncation toward zero is a
    floor here."""
    seconds = step.total_seconds()
    if seconds <= 0:
        raise ValueError("bucket must be positive")
    if shape == "sqlite":
        return "(%s + CAST((time - %s) / %s AS INTEGER) * %s)", [BUCKET_ORIGIN_EPOCH, BUCKET_ORIGIN_EPOCH, seconds, seconds]
    fn = "time_bucket" if shape == "timescale" else "date_bin"
    sql = f"{fn}(%s, time, {BUCKET_ORIGIN_SQL})"
    if epoch:
        sql = f"CAST(EXTRACT(EPOCH FROM {sql}) AS double precision)"
    return sql, [step]
