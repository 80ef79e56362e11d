"""The telemetry store: every dialect difference lives in this one module.

Three shapes of one table ``ingest_telemetry (time, asset_id, metric_id, value)``:

- PostgreSQL with the TimescaleDB extension available: a hypertable (1-day chunks) with
  compression (segment by asset and metric) and retention policies; ``time_bucket``.
- plain PostgreSQL: native range partitioning by time (one partition per
  TELEMETRY_PARTITION_DAYS, created ahead by ``maintain``; a DEFAULT partition catches the
  rest so an insert never fails), retention by dropping whole partitions; ``date_bin``.
- SQLite (the embedded default): a plain table, time as epoch seconds (REAL).

Writes: binary COPY on PostgreSQL, executemany on SQLite. Both serve the same index shape,
(asset_id, metric_id, time), for "one asset's metric over a time range".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Literal

import numpy as np
from django.conf import settings
from django.db import connection as default_connection
from django.db import transaction

from ingest.copy_binary import copy_binary_arrays
from ingest.pivot import metric_columns, pivot_readings

log = logging.getLogger(__name__)

TABLE = "ingest_telemetry"
# PostgreSQL: one row per write (its transaction id, earliest reading time, assets), so that a
# reader can ask which assets got rows since it last looked (see readings_since).
WRITES = "ingest_telemetry_writes"
WRITES_KEPT = timedelta(days=1)  # readers read in full far more often (twins: TWIN_FULL_READ_S)
Row = tuple[datetime, int, int, float]  # (time, asset_id, metric_id, value)


def dialect(connection=default_connection) -> str:
    """'timescale', 'postgres' or 'sqlite' for the table as it exists (or would be created)."""
    if connection.vendor == "sqlite":
        return "sqlite"
    if connection.vendor != "postgresql":
        raise RuntimeError(f"unsupported database vendor {connection.vendor!r}")
    with connection.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        if cur.fetchone():
            return "timescale"
    return "postgres"


def timescale_available(connection=default_connection) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        return cur.fetchone() is not None


# --- schema -------------------------------------------------------------------------------


def create_schema(connection=default_connection, use_timescale: bool | None = None) -> str:
    """Create the telemetry table in the best shape this database offers; return that shape."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cur:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (time REAL NOT NULL, asset_id INTEGER NOT NULL, "
                "metric_id INTEGER NOT NULL, value REAL NOT NULL)"
            )
            cur.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_asset_metric_time ON {TABLE} (asset_id, metric_id, time)")
        return "sqlite"
    if use_timescale is None:
        use_timescale = timescale_available(connection)
    with connection.cursor() as cur:
        if use_timescale:
            cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (time timestamptz NOT NULL, asset_id integer NOT NULL, "
                "metric_id integer NOT NULL, value double precision NOT NULL)"
            )
            cur.execute(f"SELECT create_hypertable('{TABLE}', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE)")
            cur.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_asset_metric_time ON {TABLE} (asset_id, metric_id, time DESC)")
            cur.execute(
                f"ALTER TABLE {TABLE} SET (timescaledb.compress, timescaledb.compress_segmentby = 'asset_id, metric_id', "
                "timescaledb.compress_orderby = 'time DESC')"
            )
            cur.execute(
                f"SELECT add_compression_policy('{TABLE}', INTERVAL '{int(settings.TELEMETRY_COMPRESS_AFTER_DAYS)} days', if_not_exists => TRUE)"
            )
            cur.execute(
                f"SELECT add_retention_policy('{TABLE}', INTERVAL '{int(settings.TELEMETRY_RETENTION_DAYS)} days', if_not_exists => TRUE)"
            )
        create_write_log(connection)
        if use_timescale:
            return "timescale"
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (time timestamptz NOT NULL, asset_id integer NOT NULL, "
            "metric_id integer NOT NULL, value double precision NOT NULL) PARTITION BY RANGE (time)"
        )
        cur.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_asset_metric_time ON {TABLE} (asset_id, metric_id, time DESC)")
        cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE}_default PARTITION OF {TABLE} DEFAULT")
    maintain(connection)
    return "postgres"


def create_write_log(connection=default_connection) -> None:
    """PostgreSQL: the table of writes (see WRITES). SQLite needs none: its rowids grow."""
    if connection.vendor == "sqlite":
        return
    with connection.cursor() as cur:
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {WRITES} (xid xid8 NOT NULL DEFAULT pg_current_xact_id(), "
            "stored_at timestamptz NOT NULL DEFAULT now(), min_time timestamptz NOT NULL, assets integer[] NOT NULL)"
        )
        cur.execute(f"CREATE INDEX IF NOT EXISTS {WRITES}_xid ON {WRITES} (xid)")


def drop_schema(connection=default_connection) -> None:
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {TABLE}" + ("" if connection.vendor == "sqlite" else " CASCADE"))
        if connection.vendor != "sqlite":
            cur.execute(f"DROP TABLE IF EXISTS {WRITES}")


def _partition_name(day: datetime) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def maintain(connection=default_connection, now: datetime | None = None) -> dict[str, int]:
    """Plain PostgreSQL: create partitions ahead and drop those past retention.

    TimescaleDB runs its own policies and SQLite has no partitions; for them this only
    applies retention with a DELETE on SQLite. Safe to call often (workers call it hourly).
    """
    now = now or datetime.now(UTC)
    shape = dialect(connection)
    retention_start = now - timedelta(days=settings.TELEMETRY_RETENTION_DAYS)
    if shape == "sqlite":
        with connection.cursor() as cur:
            cur.execute(f"DELETE FROM {TABLE} WHERE time < %s", [retention_start.timestamp()])
            return {"created": 0, "dropped": 0, "deleted": cur.rowcount}
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {WRITES} WHERE stored_at < %s", [now - WRITES_KEPT])
    if shape == "timescale":
        return {"created": 0, "dropped": 0, "deleted": 0}
    step = timedelta(days=settings.TELEMETRY_PARTITION_DAYS)
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    # Partitions cover the accepted window: max past age (capped by retention) to 2 steps ahead.
    oldest = max(now - timedelta(seconds=settings.INGEST_MAX_PAST_SECONDS), retention_start)
    start = epoch + ((oldest - epoch) // step) * step
    stop = now + timedelta(seconds=settings.INGEST_MAX_FUTURE_SECONDS) + 2 * step
    created = dropped = 0
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
            [TABLE],
        )
        existing = {name for name, _bound in cur.fetchall()}
        day = start
        while day < stop:
            name = _partition_name(day)
            if name not in existing:
                # A partition may not be created while the DEFAULT partition holds rows of its
                # range; move such rows in the same transaction (rare: only after downtime).
                cur.execute(
                    f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                )
                cur.execute(
                    f"WITH moved AS (DELETE FROM {TABLE}_default WHERE time >= %s AND time < %s RETURNING *) "
                    f"INSERT INTO {name} SELECT * FROM moved",
                    [day, day + step],
                )
                cur.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [day, day + step])
                created += 1
            day += step
        for name in sorted(existing):
            if not name.startswith(f"{TABLE}_p"):
                continue
            day = datetime.strptime(name[len(TABLE) + 2 :], "%Y%m%d").replace(tzinfo=UTC)
            if day + step <= retention_start:
                cur.execute(f"DROP TABLE {name}")
                dropped += 1
        cur.execute(f"DELETE FROM {TABLE}_default WHERE time < %s", [retention_start])
    if created or dropped:
        log.info("telemetry partitions: %d created, %d dropped", created, dropped)
    return {"created": created, "dropped": dropped, "deleted": 0}


# --- writes -------------------------------------------------------------------------------


def write_rows(rows: Sequence[Row], connection=default_connection) -> int:
    """Store rows in the current transaction: binary COPY on PostgreSQL, executemany on SQLite."""
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
        with cur.copy(f"COPY {TABLE} (time, asset_id, metric_id, value) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["timestamptz", "int4", "int4", "float8"])
            write_row = copy.write_row
            for row in rows:
                write_row(row)
        # After the rows (same transaction, or a later one): a reader whose mark predates this
        # write's transaction sees it in the log (readings_since).
        cur.execute(f"INSERT INTO {WRITES} (min_time, assets) VALUES (%s, %s)", [min(r[0] for r in rows), sorted({r[1] for r in rows})])
    return len(rows)


def upsert_latest(latest: dict[tuple[int, int], tuple[datetime, float]], connection=default_connection) -> None:
    """One statement for many (asset, metric) latest values; an older reading never wins."""
    if not latest:
        return
    params: list = []
    for (asset_id, metric_id), (ts, value) in latest.items():
        params.extend((asset_id, metric_id, value, ts))
    values = ", ".join(["(%s, %s, %s, %s)"] * len(latest))
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO ingest_latestvalue (asset_id, metric_id, value, ts) VALUES {values} "
            "ON CONFLICT (asset_id, metric_id) DO UPDATE SET value = excluded.value, ts = excluded.ts "
            "WHERE ingest_latestvalue.ts <= excluded.ts",
            params,
        )


# --- queries ------------------------------------------------------------------------------


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
    """min/avg/max/count of one asset's metric per time bucket in [start, end), oldest first."""
    seconds = bucket.total_seconds()
    if seconds <= 0:
        raise ValueError("bucket must be positive")
    shape = dialect(connection)
    with connection.cursor() as cur:
        if shape == "sqlite":
            cur.execute(
                f"SELECT CAST(time / %s AS INTEGER) * %s AS b, MIN(value), AVG(value), MAX(value), COUNT(*) FROM {TABLE} "
                "WHERE asset_id = %s AND metric_id = %s AND time >= %s AND time < %s GROUP BY b ORDER BY b",
                [seconds, seconds, asset_id, metric_id, start.timestamp(), end.timestamp()],
            )
            return [Bucket(datetime.fromtimestamp(b, UTC), lo, avg, hi, n) for b, lo, avg, hi, n in cur.fetchall()]
        bucket_fn = "time_bucket(%s, time)" if shape == "timescale" else "date_bin(%s, time, TIMESTAMPTZ '2000-01-01')"
        cur.execute(
            f"SELECT {bucket_fn} AS b, MIN(value), AVG(value), MAX(value), COUNT(*) FROM {TABLE} "
            "WHERE asset_id = %s AND metric_id = %s AND time >= %s AND time < %s GROUP BY b ORDER BY b",
            [bucket, asset_id, metric_id, start, end],
        )
        return [Bucket(b, lo, avg, hi, n) for b, lo, avg, hi, n in cur.fetchall()]


def bucketed_many(
    asset_id: int, metric_ids: Sequence[int], start: datetime, end: datetime, bucket: timedelta, connection=default_connection
) -> dict[int, list[tuple[float, float]]]:
    """{metric id: [(bucket start epoch s, avg), ...]} of several metrics of one asset in one
    query (an asset page's charts), oldest first."""
    seconds = bucket.total_seconds()
    if seconds <= 0:
        raise ValueError("bucket must be positive")
    out: dict[int, list[tuple[float, float]]] = {m: [] for m in metric_ids}
    if not metric_ids:
        return out
    marks = ", ".join(["%s"] * len(metric_ids))
    shape = dialect(connection)
    with connection.cursor() as cur:
        if shape == "sqlite":
            cur.execute(
                f"SELECT metric_id, CAST(time / %s AS INTEGER) * %s AS b, AVG(value) FROM {TABLE} "
                f"WHERE asset_id = %s AND metric_id IN ({marks}) AND time >= %s AND time < %s GROUP BY metric_id, b ORDER BY metric_id, b",
                [seconds, seconds, asset_id, *metric_ids, start.timestamp(), end.timestamp()],
            )
            for metric_id, b, avg in cur.fetchall():
                out[metric_id].append((float(b), avg))
            return out
        bucket_fn = "time_bucket(%s, time)" if shape == "timescale" else "date_bin(%s, time, TIMESTAMPTZ '2000-01-01')"
        cur.execute(
            f"SELECT metric_id, {bucket_fn} AS b, AVG(value) FROM {TABLE} "
            f"WHERE asset_id = %s AND metric_id IN ({marks}) AND time >= %s AND time < %s GROUP BY metric_id, b ORDER BY metric_id, b",
            [bucket, asset_id, *metric_ids, start, end],
        )
        for metric_id, b, avg in cur.fetchall():
            out[metric_id].append((b.timestamp(), avg))
    return out


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
    shape = dialect(connection)
    seconds = bucket.total_seconds()
    if seconds <= 0:
        raise ValueError("bucket must be positive")
    if shape == "sqlite":
        where = (
            f"asset_id IN ({', '.join(['%s'] * len(assets))}) AND metric_id IN ({', '.join(['%s'] * len(metrics))}) "
            "AND time >= %s AND time < %s"
        )
        where_params: list = [*assets, *metrics, start.timestamp(), end.timestamp()]
        b, bparams = "CAST(time / %s AS INTEGER) * %s", [seconds, seconds]
    else:
        where = "asset_id = ANY(%s) AND metric_id = ANY(%s) AND time >= %s AND time < %s"
        where_params = [assets, metrics, start, end]
        if shape == "timescale":
            b, bparams = "CAST(EXTRACT(EPOCH FROM time_bucket(%s, time)) AS double precision)", [bucket]
        else:
            b, bparams = "CAST(EXTRACT(EPOCH FROM date_bin(%s, time, TIMESTAMPTZ '2000-01-01')) AS double precision)", [bucket]
    pivot = ", ".join(["AVG(CASE WHEN metric_id = %s THEN value END)"] * len(metrics))
    sql = f"SELECT asset_id, {b} AS b, {pivot} FROM {TABLE} WHERE {where} GROUP BY asset_id, b ORDER BY asset_id, b"
    with connection.cursor() as cur:
        cur.execute(sql, [*bparams, *metrics, *where_params])
        rows = cur.fetchall()
    if not rows:
        return {}
    table = np.array(rows, dtype=np.float64)  # None -> NaN
    ids = table[:, 0].astype(np.int64)
    cuts = np.flatnonzero(np.diff(ids)) + 1
    return {int(part[0, 0]): (part[:, 1], part[:, 2:]) for part in np.split(table, cuts)}


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
    shape = dialect(connection)
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


# --- insertion order (incremental reads) --------------------------------------------------


@dataclass(frozen=True)
class InsertMark:
    """Where a reader last looked, to ask later which rows were stored since.

    SQLite: the newest rowid (rowids grow with every insert, so the rows above it are exactly
    the new ones), and ``row`` (asset_id, metric_id, time, value), what sat there: another row
    there means the table was emptied or rewritten and the reader must read everything again.
    PostgreSQL: the oldest transaction still running (the snapshot's xmin): every write whose
    transaction id is below it had ended, so the writes at or above it are all a reader can
    have missed (some it may have seen: what it reads again replaces them). ``row`` is unused.
    """

    rowid: int
    row: tuple


@dataclass(frozen=True)
class NewReadings:
    """What readings_since returns: the new mark, the readings (asset, metric, time, value), and
    where they replace what the reader kept: None (SQLite: exactly the new rows, to append),
    or (assets, time): for these assets, every reading from that time on (PostgreSQL)."""

    mark: InsertMark
    readings: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    replaces: tuple[np.ndarray, float] | None


def has_insert_order(connection=default_connection) -> bool:
    """Whether ``insert_mark`` can tell which rows are new (no query): SQLite by its rowids,
    PostgreSQL by the write log (WRITES)."""
    return connection.vendor in ("sqlite", "postgresql")


def insert_mark(connection=default_connection) -> InsertMark | None:
    """Where the store stands now (see InsertMark); None where it cannot tell."""
    if not has_insert_order(connection):
        return None
    with connection.cursor() as cur:
        if connection.vendor == "sqlite":
            cur.execute(f"SELECT rowid, asset_id, metric_id, time, value FROM {TABLE} ORDER BY rowid DESC LIMIT 1")
            found = cur.fetchone()
            return InsertMark(0, ()) if found is None else InsertMark(found[0], tuple(found[1:]))
        cur.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        return InsertMark(int(cur.fetchone()[0]), ())


def readings_since(
    mark: InsertMark, asset_ids: Sequence[int], metric_ids: Sequence[int], connection=default_connection,
) -> NewReadings | None:
    """The readings of these assets and metrics stored after ``mark``, any time; None when
    ``mark`` no longer holds (SQLite: the table was rewritten).

    SQLite: exactly the rows stored after the mark, up to the new one. No transaction needed:
    one writer at a time, so every row up to the newest committed rowid is committed.
    PostgreSQL: from the write log, the assets written since the mark and the earliest time
    written; then every reading of those assets from that time on, which replaces what the
    reader kept from that time on (late readings included). The new mark is taken first."""
    now = insert_mark(connection)
    if now is None:
        raise RuntimeError("this store has no insertion order")
    assets, metrics = [int(a) for a in asset_ids], [int(m) for m in metric_ids]
    if connection.vendor != "sqlite":
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT min(w.min_time), array_agg(DISTINCT a.id) FROM {WRITES} w CROSS JOIN LATERAL unnest(w.assets) AS a(id) "
                "WHERE w.xid >= %s::text::xid8 AND a.id = ANY(%s::integer[])",
                [str(mark.rowid), assets],
            )
            since, changed = cur.fetchone()
        if not changed:
            return NewReadings(now, (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), np.empty(0)), None)
        sql = (
            "SELECT array_agg(asset_id), array_agg(metric_id), array_agg(time), array_agg(value) "
            f"FROM {TABLE} WHERE asset_id = ANY(%s::integer[]) AND metric_id = ANY(%s::integer[]) AND time >= %s"
        )
        readings = _pg_reading_arrays(sql, [sorted(changed), metrics, since], connection)
        return NewReadings(now, readings, (np.asarray(sorted(changed), dtype=np.int64), since.timestamp()))
    with connection.cursor() as cur:
        if mark.rowid:
            cur.execute(f"SELECT asset_id, metric_id, time, value FROM {TABLE} WHERE rowid = %s", [mark.rowid])
            found = cur.fetchone()
            if found is None or tuple(found) != mark.row:
                return None
        if now.rowid < mark.rowid:
            return None
        # "+column" keeps SQLite on the rowid range (the new rows only) instead of the index.
        cur.execute(
            f"SELECT asset_id, metric_id, time, value FROM {TABLE} WHERE rowid > %s AND rowid <= %s "
            f"AND +asset_id IN ({', '.join(['%s'] * len(assets))}) AND +metric_id IN ({', '.join(['%s'] * len(metrics))})",
            [mark.rowid, now.rowid, *assets, *metrics],
        )
        return NewReadings(now, _float_columns(cur), None)
