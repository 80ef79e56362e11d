"""Reading telemetry: bucketed series, latest values, raw readings for the twins.

TimescaleDB (Community) serves bucketed reads of whole minutes from the 1-minute continuous
aggregate (real-time: the minutes not materialized yet come from the raw table), with the
partial minutes at the edges of the range read raw: the result is the raw query's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import TYPE_CHECKING, Literal

import numpy as np
from django.db import connection as default_connection
from django.db import transaction

from ingest.copy_binary import copy_binary_arrays
from ingest.pivot import metric_columns, pivot_readings
from ingest.timeseries import store, timescale
from ingest.timeseries.buckets import BUCKET_ORIGIN_SQL, bucket_floor, bucket_sql
from ingest.timeseries.store import TABLE

if TYPE_CHECKING:
    from ingest.timeseries.incremental import InsertMark

MINUTE = 60.0


def uses_minute_aggregate(connection, step: timedelta) -> bool:
    """Whether bucketed reads of ``step`` can come from the minute aggregate."""
    shape, edition = store.store_info(connection)
    if shape != "timescale" or edition != "community" or step.total_seconds() % MINUTE:
        return False
    return store.has_aggregate(connection)




@dataclass(frozen=True)
class Bucket:
    start: datetime
    min: float
    avg: float
    max: float
    count: int


def bucketed(
    asset_id: int, metric_id: int, start: datetime, end: datetime, bucket: timedelta, connection=default_connection
) -> list[Bucket]:
    """min/avg/max/count of one asset's metric per time bucket in [start, end), oldest first;
    buckets aligned to the common origin (buckets.py)."""
    return bucketed_metrics(asset_id, [metric_id], start, end, bucket, connection)[metric_id]


def bucketed_many(
    asset_id: int, metric_ids: Sequence[int], start: datetime, end: datetime, bucket: timedelta, connection=default_connection
) -> dict[int, list[tuple[float, float]]]:
    """{metric id: [(bucket start epoch s, avg), ...]} of several metrics of one asset, oldest
    first: an asset page's charts from one read."""
    return {
        metric: [(b.start.timestamp(), b.avg) for b in buckets]
        for metric, buckets in bucketed_metrics(asset_id, metric_ids, start, end, bucket, connection).items()
    }


def bucketed_metrics(
    asset_id: int, metric_ids: Sequence[int], start: datetime, end: datetime, bucket: timedelta, connection=default_connection
) -> dict[int, list[Bucket]]:
    """{metric id: [Bucket, ...]} for several metrics of one asset in one query (the minute
    aggregate where it can serve: whole minutes from it, the partial minutes at the edges raw)."""
    if bucket.total_seconds() <= 0:
        raise ValueError("bucket must be positive")
    metrics = [int(m) for m in metric_ids]
    if not metrics:
        return {}
    shape, _edition = store.store_info(connection)
    if uses_minute_aggregate(connection, bucket):
        return _bucketed_from_aggregate(asset_id, metrics, start, end, bucket, connection)
    return _bucketed_raw(shape, asset_id, metrics, start, end, bucket, connection)


def _bucketed_raw(shape, asset_id, metrics, start, end, bucket, connection) -> dict[int, list[Bucket]]:
    metrics = [metrics] if isinstance(metrics, int) else list(metrics)
    b, bparams = bucket_sql(shape, bucket)
    lo, hi = (start.timestamp(), end.timestamp()) if shape == "sqlite" else (start, end)
    marks = ", ".join(["%s"] * len(metrics))
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT metric_id, {b} AS b, MIN(value), AVG(value), MAX(value), COUNT(*) FROM {TABLE} "
            f"WHERE asset_id = %s AND metric_id IN ({marks}) AND time >= %s AND time < %s "
            "GROUP BY metric_id, b ORDER BY metric_id, b",
            [*bparams, asset_id, *metrics, lo, hi],
        )
        rows = cur.fetchall()
    out: dict[int, list[Bucket]] = {m: [] for m in metrics}
    for metric, b_, lo_, avg, hi_, n in rows:
        start_ = datetime.fromtimestamp(b_, UTC) if shape == "sqlite" else b_
        out[metric].append(Bucket(start_, lo_, avg, hi_, n))
    return out


def _bucketed_from_aggregate(asset_id, metrics, start, end, bucket, connection) -> dict[int, list[Bucket]]:
    """Whole minutes from the aggregate, the partial minutes at both edges from the raw table,
    merged per bucket (min of mins, sum of sums / sum of counts, ...)."""
    first_minute = datetime.fromtimestamp(bucket_floor(start.timestamp() + MINUTE - 1e-6, MINUTE), UTC)
    last_minute = datetime.fromtimestamp(bucket_floor(end.timestamp(), MINUTE), UTC)
    parts: dict[int, dict[datetime, list[float]]] = {m: {} for m in metrics}

    def add(metric: int, b: datetime, lo: float, total: float, hi: float, n: int) -> None:
        have = parts[metric].get(b)
        if have is None:
            parts[metric][b] = [lo, total, hi, n]
        else:
            have[0], have[1], have[2], have[3] = min(have[0], lo), have[1] + total, max(have[2], hi), have[3] + n

    with connection.cursor() as cur:
        if first_minute < last_minute:
            cur.execute(
                f"SELECT metric_id, time_bucket(%s, bucket, {BUCKET_ORIGIN_SQL}) AS b, min(min), sum(sum), max(max), sum(count) "
                f"FROM {timescale.MINUTE_AGGREGATE} WHERE asset_id = %s AND metric_id = ANY(%s) AND bucket >= %s AND bucket < %s "
                "GROUP BY metric_id, b",
                [bucket, asset_id, metrics, first_minute, last_minute],
            )
            for metric, b, lo, total, hi, n in cur.fetchall():
                add(metric, b, lo, total, hi, int(n))
        edges = [(start, min(first_minute, end))] + ([(max(last_minute, start), end)] if last_minute >= first_minute else [])
        b_sql, bparams = bucket_sql("timescale", bucket)
        for lo_t, hi_t in edges:
            if lo_t >= hi_t:
                continue
            cur.execute(
                f"SELECT metric_id, {b_sql} AS b, MIN(value), SUM(value), MAX(value), COUNT(*) FROM {TABLE} "
                "WHERE asset_id = %s AND metric_id = ANY(%s) AND time >= %s AND time < %s GROUP BY metric_id, b",
                [*bparams, asset_id, metrics, lo_t, hi_t],
            )
            for metric, b_, lo, total, hi, n in cur.fetchall():
                add(metric, b_, lo, total, hi, int(n))
    return {
        metric: [Bucket(b, lo, total / n, hi, n) for b, (lo, total, hi, n) in sorted(found.items()) if n]
        for metric, found in parts.items()
    }


def latest_values(asset_ids: Iterable[int] | None = None) -> dict[int, dict[str, tuple[float, datetime]]]:
    """{asset_id: {metric_key: (value, ts)}} from the latest-value table (one query)."""
    from ingest.models import LatestValue

    qs = LatestValue.objects.all()
    if asset_ids is not None:
        qs = qs.filter(asset_id__in=list(asset_ids))
    out: dict[int, dict[str, tuple[float, datetime]]] = {}
    # Tuples, not model instances: the twin refresh asks for 15,000 of them at once.
    for asset_id, key, value, ts in qs.values_list("asset_id", "metric__key", "value", "ts"):
        out.setdefault(asset_id, {})[key] = (value, ts)
    return out


def count_rows(asset_id: int | None = None, connection=default_connection) -> int:
    with connection.cursor() as cur:
        if asset_id is None:
            cur.execute(f"SELECT COUNT(*) FROM {TABLE}")
        else:
            cur.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE asset_id = %s", [asset_id])
        return cur.fetchone()[0]


def fetch_rows(asset_id: int, metric_id: int, connection=default_connection) -> list[tuple[datetime, float]]:
    """Every stored (time, value) of one asset's metric, oldest first (tests, exports)."""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT time, value FROM {TABLE} WHERE asset_id = %s AND metric_id = %s ORDER BY time", [asset_id, metric_id]
        )
        rows = cur.fetchall()
    if connection.vendor == "sqlite":
        return [(datetime.fromtimestamp(t, UTC), v) for t, v in rows]
    return rows



def recent_rows_many(
    asset_ids: Sequence[int],
    metric_ids: Sequence[int],
    start: datetime,
    end: datetime,
    bucket: timedelta | None = None,
    limit: int | None = None,
    connection=default_connection,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{asset_id: (times [T] epoch s, values [T, M] in ``metric_ids`` order, NaN where a metric
    has no value)} in [start, end), oldest first, for many assets in ONE statement (the twin
    refresh of a whole asset type).

    With ``bucket``: the average per time bucket (bucket starts), pivoted in SQL (one row per
    asset and bucket). Without: the raw readings (one row per distinct timestamp, e.g. an engine
    cycle), at most the last ``limit`` per asset: the statement reads the readings themselves
    (index order, no SQL pivot) and ``ingest.pivot`` arranges them in numpy.
    """
    if not asset_ids or not metric_ids:
        return {}
    assets, metrics = [int(a) for a in asset_ids], [int(m) for m in metric_ids]
    if bucket is None:
        if limit is None or limit <= 0:
            raise ValueError("raw rows need a positive limit")
        asset, metric, times, value = recent_readings(assets, metrics, start, end, int(limit), connection=connection)
        columns = metric_columns(metric, np.asarray(metrics, dtype=np.int64))
        return pivot_readings(asset, columns, times, value, len(metrics), limit=int(limit))
    shape, _edition = store.store_info(connection)
    if bucket.total_seconds() <= 0:
        raise ValueError("bucket must be positive")
    aligned = start.timestamp() % MINUTE == 0 and end.timestamp() % MINUTE == 0
    if aligned and uses_minute_aggregate(connection, bucket):
        return _rows_from_aggregate(assets, metrics, start, end, bucket, connection)
    if shape == "sqlite":
        where = (
            f"asset_id IN ({', '.join(['%s'] * len(assets))}) AND metric_id IN ({', '.join(['%s'] * len(metrics))}) "
            "AND time >= %s AND time < %s"
        )
        where_params: list = [*assets, *metrics, start.timestamp(), end.timestamp()]
    else:
        where = "asset_id = ANY(%s) AND metric_id = ANY(%s) AND time >= %s AND time < %s"
        where_params = [assets, metrics, start, end]
    b, bparams = bucket_sql(shape, bucket, epoch=True)
    pivot = ", ".join(["AVG(CASE WHEN metric_id = %s THEN value END)"] * len(metrics))
    sql = f"SELECT asset_id, {b} AS b, {pivot} FROM {TABLE} WHERE {where} GROUP BY asset_id, b ORDER BY asset_id, b"
    with connection.cursor() as cur:
        cur.execute(sql, [*bparams, *metrics, *where_params])
        rows = cur.fetchall()
    if not rows:
        return {}
    return _split_by_asset(rows)


def _split_by_asset(rows: list) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Rows (asset_id, bucket epoch s, value per metric...) ordered by asset and bucket."""
    table = np.array(rows, dtype=np.float64)  # None -> NaN
    ids = table[:, 0].astype(np.int64)
    cuts = np.flatnonzero(np.diff(ids)) + 1
    return {int(part[0, 0]): (part[:, 1], part[:, 2:]) for part in np.split(table, cuts)}


def _rows_from_aggregate(assets, metrics, start, end, bucket, connection) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The per-bucket averages of ``recent_rows_many`` from the minute aggregate: a sixtieth of
    the rows of a 1 Hz stream, or fewer."""
    pivot = ", ".join(["SUM(CASE WHEN metric_id = %s THEN sum END) / SUM(CASE WHEN metric_id = %s THEN count END)"] * len(metrics))
    sql = (
        f"SELECT asset_id, CAST(EXTRACT(EPOCH FROM time_bucket(%s, bucket, {BUCKET_ORIGIN_SQL})) AS double precision) AS b, {pivot} "
        f"FROM {timescale.MINUTE_AGGREGATE} WHERE asset_id = ANY(%s) AND metric_id = ANY(%s) AND bucket >= %s AND bucket < %s "
        "GROUP BY asset_id, b ORDER BY asset_id, b"
    )
    with connection.cursor() as cur:
        cur.execute(sql, [bucket, *[m for m in metrics for _ in (0, 1)], assets, metrics, start, end])
        rows = cur.fetchall()
    return _split_by_asset(rows) if rows else {}


# Epoch seconds of PostgreSQL's binary timestamp origin (2000-01-01 UTC), in microseconds.
_PG_EPOCH_US = 946_684_800_000_000


def recent_readings(
    asset_ids: Sequence[int], metric_ids: Sequence[int], start: datetime, end: datetime, limit: int,
    upper: datetime | None | Literal["end"] = "end", through: InsertMark | None = None, connection=default_connection,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(asset, metric, time epoch s, value) of the readings in [start, ``upper``) (``end`` unless
    given; None: no upper bound) that each asset's last ``limit`` distinct times before ``end``
    can need, in no particular order. One statement. ``through``: only rows stored up to that
    mark (SQLite), so that ``readings_since(through)`` returns the rest without overlap.

    Each asset's rows start at a cutoff: the ``limit``-th latest distinct time before ``end`` of
    its first metric (one index probe per asset). The asset's last ``limit`` distinct times over
    all metrics are never older than that, so the pivot trims the rest; without it a
    fast-cycling asset would send its whole lookback window.
    """
    assets, metrics = [int(a) for a in asset_ids], [int(m) for m in metric_ids]
    if not assets or not metrics:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), np.empty(0)
    shape, _edition = store.store_info(connection)
    upper = end if upper == "end" else upper
    cutoff = (
        f"COALESCE((SELECT DISTINCT time FROM {TABLE} WHERE asset_id = a.id AND metric_id = %s AND time >= %s AND time < %s "
        "ORDER BY time DESC LIMIT 1 OFFSET %s), %s)"
    )
    if shape == "sqlite":
        lo, hi = start.timestamp(), end.timestamp()
        sql = (
            f"WITH a(id) AS (VALUES {', '.join(['(%s)'] * len(assets))}), "
            f"c AS MATERIALIZED (SELECT id, {cutoff} AS cutoff FROM a) "
            f"SELECT r.asset_id, r.metric_id, r.time, r.value FROM c CROSS JOIN {TABLE} r "
            f"WHERE r.asset_id = c.id AND r.metric_id IN ({', '.join(['%s'] * len(metrics))}) AND r.time >= c.cutoff"
        )
        params = [*assets, metrics[0], lo, hi, limit - 1, lo, *metrics]
        if upper is not None:
            sql += " AND r.time < %s"
            params.append(upper.timestamp())
        if through is not None:
            sql += " AND r.rowid <= %s"
            params.append(through.rowid)
        with connection.cursor() as cur:
            cur.execute(sql, params)
            return _float_columns(cur)
    # PostgreSQL: ``through`` needs no bound here. The reader took its mark before this read, and
    # what readings_since returns later replaces the rows it overlaps.
    # PostgreSQL: the readings as four arrays in one row of a binary COPY, cut into numpy arrays
    # without a Python object per reading. The cutoffs first (materialized, one probe per asset);
    # their minimum lets the executor skip whole partitions.
    sql = (
        f"WITH c AS MATERIALIZED (SELECT a.id, {cutoff} AS cutoff FROM unnest(%s::integer[]) AS a(id)) "
        "SELECT array_agg(r.asset_id), array_agg(r.metric_id), array_agg(r.time), array_agg(r.value) "
        f"FROM c JOIN {TABLE} r ON r.asset_id = c.id AND r.time >= c.cutoff "
        "WHERE r.asset_id = ANY(%s::integer[]) AND r.metric_id = ANY(%s::integer[]) "
        "AND r.time >= (SELECT min(cutoff) FROM c)"
    )
    params = [metrics[0], start, end, limit - 1, start, assets, assets, metrics]
    if upper is not None:
        sql += " AND r.time < %s"
        params.append(upper)
    return _pg_reading_arrays(sql, params, connection)


def _pg_reading_arrays(select: str, params: list, connection) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run ``COPY (select) TO STDOUT`` where ``select`` yields one row of four arrays (asset,
    metric, time, value), and return them as numpy arrays (time in epoch seconds)."""
    connection.ensure_connection()
    with transaction.atomic(using=connection.alias), connection.connection.cursor() as cur:
        # With a partition per day the planner's estimate passes jit_above_cost, and compiling
        # the plan took longer (1.5 s) than running it; a parallel plan funnels every reading
        # through Gather before the join with the cutoffs (540 ms against 400 ms serial, 1,000
        # engines): neither, for this statement's transaction.
        cur.execute("SELECT set_config('jit', 'off', true), set_config('max_parallel_workers_per_gather', '0', true)")
        with cur.copy(f"COPY ({select}) TO STDOUT (FORMAT BINARY)", params) as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
    asset, metric, micros, value = copy_binary_arrays(data, (">i4", ">i4", ">i8", ">f8"))
    return asset.astype(np.int64), metric.astype(np.int64), (micros.astype(np.int64) + _PG_EPOCH_US) / 1e6, value.astype(np.float64)


def _float_columns(cur) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SQLite rows (asset_id, metric_id, time, value) as arrays: one flat float array straight
    from the driver's cursor (Django's wrapper iterates in Python), no list of row tuples."""
    table = np.fromiter(chain.from_iterable(cur.cursor), dtype=np.float64).reshape(-1, 4)
    return table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2], table[:, 3]


