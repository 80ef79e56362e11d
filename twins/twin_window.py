"""Each asset's recent readings, kept between twin refreshes in this process, so that a refresh
of per-reading (cycle) models reads only the rows stored since the previous one.

The store says what is new (``timeseries.InsertMark``): SQLite by its rowid, which grows with
every insert; PostgreSQL by its write log (which assets each transaction wrote, from which
time), whose readings from that time on replace what the window kept. Both catch late readings
(an edge node's buffer after an outage, any time in the last INGEST_MAX_PAST_SECONDS): they are
new writes whatever their time. A window is read in full again on the first refresh, when the
model, its metrics or its row count change, when ``now`` goes back, when the mark no longer
holds (SQLite: table emptied or rewritten), and at least every TWIN_FULL_READ_S (what no mark
shows, e.g. deleted rows, lasts no longer than that).

Correctness: the rows of an asset's last ``limit`` distinct times before a later ``end`` are
all either in the window (read with no upper time bound, so early readings with a future
timestamp are there too) or stored after its mark. Rows older than an asset's ``limit``-th
latest time can never return into its last ``limit`` times, and are dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ingest import timeseries
from ingest.pivot import metric_columns, pivot_readings
from twins import twin_const as tc

log = logging.getLogger(__name__)

Rows = dict[int, tuple[np.ndarray, np.ndarray]]


@dataclass
class _Window:
    version: str
    metric_ids: tuple[int, ...]
    limit: int
    start: float
    end: float
    mark: timeseries.InsertMark
    full_read_at: float
    assets: set[int]
    asset: np.ndarray
    column: np.ndarray
    time: np.ndarray
    value: np.ndarray


_windows: dict[str, _Window] = {}
_lock = threading.Lock()


def clear() -> None:
    """Forget every window: the next refresh reads in full (tests, benchmarks)."""
    with _lock:
        _windows.clear()


def recent_rows(
    key: str, version: str, asset_ids: Sequence[int], metric_ids: Sequence[int], start: datetime, end: datetime, limit: int,
) -> tuple[Rows, bool]:
    """What ``timeseries.recent_rows_many(asset_ids, metric_ids, start, end, limit=limit)`` returns,
    and whether it came from the kept window plus the new rows (True) or a full read."""
    metrics = tuple(int(m) for m in metric_ids)
    wanted = sorted({int(a) for a in asset_ids})
    if not timeseries.has_insert_order():
        return timeseries.recent_rows_many(wanted, metrics, start, end, limit=limit), False
    lo, hi = start.timestamp(), end.timestamp()
    with _lock:
        try:
            window, incremental = _advance(_windows.pop(key, None), version, wanted, metrics, start, end, limit)
        except Exception:
            # nothing half-merged survives: the next refresh reads in full
            log.warning("twin window %s dropped after a failed read", key)
            raise
        rows = _pivot_and_trim(window, wanted, lo, hi)
        _windows[key] = window
        return rows, incremental


def _advance(
    window: _Window | None, version: str, wanted: list[int], metrics: tuple[int, ...], start: datetime, end: datetime, limit: int,
) -> tuple[_Window, bool]:
    """The window with the rows stored since its mark (and the full read of any asset it lacks),
    or a new window from a full read; the old one is not modified."""
    lo, hi = start.timestamp(), end.timestamp()
    since = None
    if (
        window is not None and (window.version, window.metric_ids, window.limit) == (version, metrics, limit)
        and lo >= window.start and hi >= window.end and time.monotonic() - window.full_read_at < tc.TWIN_FULL_READ_S
    ):
        since = timeseries.readings_since(window.mark, sorted(window.assets), metrics)
    if window is None or since is None:
        mark = timeseries.insert_mark()
        if mark is None:
            raise RuntimeError("this store has no insertion order")
        readings = timeseries.recent_readings(wanted, metrics, start, end, limit, upper=None, through=mark)
        return _Window(version, metrics, limit, lo, hi, mark, time.monotonic(), set(wanted), *_with_columns(readings, metrics)), False
    mark, kept = since.mark, (window.asset, window.column, window.time, window.value)
    if since.replaces is not None:  # PostgreSQL: these assets' readings from that time on, anew
        changed, cut = since.replaces
        stale = np.isin(window.asset, changed) & (window.time >= cut)
        kept = tuple(a[~stale] for a in kept)
    parts = [kept, _with_columns(since.readings, metrics)]
    missing = [a for a in wanted if a not in window.assets]
    if missing:  # assets added since: their full read joins the window
        parts.append(_with_columns(timeseries.recent_readings(missing, metrics, start, end, limit, upper=None, through=mark), metrics))
    asset, column, times, value = (np.concatenate(p) for p in zip(*parts, strict=True))
    merged = _Window(
        version, metrics, limit, lo, hi, mark, window.full_read_at, window.assets | set(missing), asset, column, times, value,
    )
    return merged, True


def _with_columns(readings, metrics: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    asset, metric, times, value = readings
    return asset, metric_columns(metric, np.asarray(metrics, dtype=np.int64)), times, value


def _pivot_and_trim(window: _Window, wanted: list[int], lo: float, hi: float) -> Rows:
    keep = window.time >= lo
    window.asset, window.column, window.time, window.value = (a[keep] for a in (window.asset, window.column, window.time, window.value))
    use = window.time < hi
    if len(wanted) != len(window.assets):
        use &= np.isin(window.asset, wanted)
    rows = pivot_readings(
        window.asset[use], window.column[use], window.time[use], window.value[use], len(window.metric_ids), limit=window.limit,
    )
    # An asset with a full window keeps nothing older than its first row.
    full = sorted(a for a, (t, _v) in rows.items() if len(t) == window.limit)
    if full:
        ids = np.asarray(full, dtype=np.int64)
        firsts = np.asarray([rows[a][0][0] for a in full])
        pos = np.searchsorted(ids, window.asset).clip(max=len(ids) - 1)
        has_cut = ids[pos] == window.asset
        keep = ~has_cut | (window.time >= firsts[pos])
        window.asset, window.column, window.time, window.value = (
            a[keep] for a in (window.asset, window.column, window.time, window.value)
        )
    return rows
