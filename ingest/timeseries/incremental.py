"""Incremental reads: which readings were stored since a reader last looked (the twins).

SQLite knows it by its rowids; PostgreSQL and TimescaleDB by the write log (schema.WRITES).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.db import connection as default_connection

from ingest.timeseries.queries import _float_columns, _pg_reading_arrays
from ingest.timeseries.schema import WRITES
from ingest.timeseries.store import TABLE


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
