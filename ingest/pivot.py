"""Readings (asset, metric, time, value) -> one row per asset and time, one column per metric,
in numpy. Pure: ``timeseries.recent_rows_many`` feeds it what the database returned.

Pivoting in numpy instead of SQL lets the database do a plain index scan: the SQL pivot
(one AVG(CASE ...) per metric, evaluated on every reading, then a sort by asset and time) cost
about twice as much as reading the same rows, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import numpy as np


def metric_columns(metric: np.ndarray, metric_ids: np.ndarray) -> np.ndarray:
    """The column of each reading's metric in ``metric_ids`` order; ValueError for a metric
    that was not asked for (the query must have filtered it out)."""
    sorter = np.argsort(metric_ids, kind="stable")
    pos = np.searchsorted(metric_ids, metric, sorter=sorter).clip(max=len(metric_ids) - 1)
    columns = sorter[pos]
    if len(metric) and not np.array_equal(metric_ids[columns], metric):
        raise ValueError("readings of a metric that was not asked for")
    return columns


def pivot_readings(
    asset: np.ndarray, column: np.ndarray, time: np.ndarray, value: np.ndarray, n_metrics: int, limit: int | None = None,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{asset_id: (times [T], values [T, n_metrics])}, oldest first, NaN where a metric has no
    reading at that time; several readings of one metric at one time are averaged (what SQL's
    GROUP BY ... AVG did). ``limit``: keep only each asset's last ``limit`` distinct times.
    The inputs may come in any order."""
    if not len(asset):
        return {}
    order = np.lexsort((time, asset))
    asset, column, time, value = asset[order], column[order], time[order], value[order]
    starts_row = np.empty(len(asset), dtype=bool)
    starts_row[0] = True
    np.not_equal(asset[1:], asset[:-1], out=starts_row[1:])
    starts_row[1:] |= time[1:] != time[:-1]
    row = np.cumsum(starts_row) - 1
    n_rows = int(row[-1]) + 1
    cell = row * n_metrics + column
    sums = np.bincount(cell, weights=value, minlength=n_rows * n_metrics)
    counts = np.bincount(cell, minlength=n_rows * n_metrics)
    values = np.full(n_rows * n_metrics, np.nan)
    np.divide(sums, counts, out=values, where=counts > 0)
    values = values.reshape(n_rows, n_metrics)
    row_asset, row_time = asset[starts_row], time[starts_row]
    cuts = np.flatnonzero(row_asset[1:] != row_asset[:-1]) + 1
    bounds = zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [n_rows])), strict=True)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for lo, hi in bounds:
        if limit is not None:
            lo = max(lo, hi - limit)
        out[int(row_asset[lo])] = (row_time[lo:hi], values[lo:hi])
    return out
