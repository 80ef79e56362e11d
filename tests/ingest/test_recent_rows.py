"""The twin refresh's bulk read (``timeseries.recent_rows_many``, raw readings pivoted in numpy)
against a plain-Python reading of the same rows: gaps, duplicates, out-of-order writes, readings
outside the window, other assets and metrics, and a first metric that is sparse or repeats a time."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import numpy as np
import pytest
from django.db import transaction

from ingest import timeseries
from ingest.pivot import pivot_readings
from tests.factories import make_asset, make_asset_type, make_site

T0 = 1_790_000_000.123457


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def expected(rows, assets, metrics, start, end, limit):
    """What the SQL pivot returned: per asset and distinct time, the mean of each metric."""
    cells: dict[int, dict[float, dict[int, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for ts, asset, metric, value in rows:
        if asset in assets and metric in metrics and start <= ts < end:
            cells[asset][ts.timestamp()][metric].append(value)
    out = {}
    for asset, by_time in cells.items():
        times = sorted(by_time)[-limit:]
        values = [[float(np.mean(by_time[t][m])) if by_time[t][m] else np.nan for m in metrics] for t in times]
        out[asset] = (np.array(times), np.array(values))
    return out


@pytest.fixture
def telemetry(db):
    site = make_site()
    kind = make_asset_type(metrics=[(k, "", -1e9, 1e9) for k in ("a", "b", "c", "d")])
    m = {x.key: x.id for x in kind.metrics.all()}
    steady, sparse_first, repeats, other = (make_asset(site, kind, None) for _ in range(4))
    rng = np.random.default_rng(7)
    rows = []
    for k in range(12):  # every metric, one row per cycle
        for key in ("a", "b", "c", "d"):
            if (k, key) != (5, "b"):  # a gap
                rows.append((_at(T0 + k), steady.id, m[key], float(rng.normal(100, 30))))
    rows.append((_at(T0 + 9), steady.id, m["c"], 1.0))  # a second reading of one metric at one time
    rows.append((_at(T0 + 10.5), steady.id, m["c"], 2.0))  # a time only another metric has
    rows.append((_at(T0 - 100), steady.id, m["a"], 3.0))  # before the window
    rows.append((_at(T0 + 12), steady.id, m["a"], 4.0))  # at the window's end (excluded)
    for k in range(12):
        if k in (0, 11):  # the first metric reports twice only
            rows.append((_at(T0 + k), sparse_first.id, m["a"], float(k)))
        for key in ("b", "c"):
            rows.append((_at(T0 + k + 0.25), sparse_first.id, m[key], float(rng.normal())))
    for k in range(8):  # the first metric has two readings at every time
        rows.append((_at(T0 + k), repeats.id, m["a"], float(k)))
        rows.append((_at(T0 + k), repeats.id, m["a"], float(k) + 1.0))
        rows.append((_at(T0 + k), repeats.id, m["b"], float(-k)))
    for k in range(5):
        rows.append((_at(T0 + k), other.id, m["a"], 9.0))
    rng.shuffle(rows)  # written in no particular order, like late batches
    with transaction.atomic():
        timeseries.write_rows(rows)
    return rows, [steady.id, sparse_first.id, repeats.id], [m["a"], m["b"], m["c"]]


@pytest.mark.parametrize("limit", [1, 4, 7, 50])
def test_it_reads_the_last_rows_of_each_asset_like_a_plain_pivot(telemetry, limit):
    rows, assets, metrics = telemetry
    start, end = _at(T0 - 10), _at(T0 + 12)
    got = timeseries.recent_rows_many(assets, metrics, start, end, limit=limit)
    want = expected(rows, assets, metrics, start, end, limit)
    assert sorted(got) == sorted(want)
    for asset in want:
        np.testing.assert_array_equal(got[asset][0], want[asset][0])
        np.testing.assert_allclose(got[asset][1], want[asset][1], rtol=1e-12, equal_nan=True)


def test_it_returns_nothing_for_assets_without_readings_in_the_window(telemetry):
    _rows, assets, metrics = telemetry
    assert timeseries.recent_rows_many(assets, metrics, _at(T0 + 100), _at(T0 + 200), limit=5) == {}
    assert timeseries.recent_rows_many(assets, [], _at(T0), _at(T0 + 20), limit=5) == {}


def test_it_pivots_readings_given_in_any_order():
    asset = np.array([2, 1, 2, 1, 1])
    column = np.array([0, 1, 1, 0, 0])
    time = np.array([5.0, 3.0, 5.0, 3.0, 4.0])
    value = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    out = pivot_readings(asset, column, time, value, 2)
    np.testing.assert_array_equal(out[1][0], [3.0, 4.0])
    np.testing.assert_array_equal(out[1][1], [[4.0, 2.0], [5.0, np.nan]])
    np.testing.assert_array_equal(out[2][1], [[1.0, 3.0]])
    assert pivot_readings(asset, column, time, value, 2, limit=1)[1][0].tolist() == [4.0]
