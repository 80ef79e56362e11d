"""A refresh that reads only the rows stored since the previous one (twins/twin_window.py) sees
exactly what a cold full read sees: after new cycles, late and out-of-order readings, a reading
stamped ahead of time, a new asset, and a table rewritten under it."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from django.db import connection, transaction

from edge_node.agent.sources.cmapss import engines_of
from ingest import timeseries
from tests.factories import make_asset, make_asset_type, make_site
from tests.twins.conftest import write_engine
from twins import twin_window
from twins.models import TwinState
from twins.twin_refresh import refresh_twins

T0 = 1_790_000_000.25
LIMIT = 6


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _same(got, want):
    assert sorted(got) == sorted(want)
    for asset in want:
        np.testing.assert_array_equal(got[asset][0], want[asset][0])
        np.testing.assert_allclose(got[asset][1], want[asset][1], rtol=1e-12, equal_nan=True)


@pytest.fixture
def fleet(db):
    kind = make_asset_type(metrics=[(k, "", -1e9, 1e9) for k in ("a", "b", "c")])
    metrics = [m.id for m in kind.metrics.order_by("key")]
    site = make_site()
    assets = [make_asset(site, kind, None) for _ in range(3)]
    rng = np.random.default_rng(3)

    def write(rows):
        with transaction.atomic():
            timeseries.write_rows([(_at(t), a, m, float(v)) for t, a, m, v in rows])

    def cycles(asset_ids, first, last):
        return [(T0 + k, a, m, rng.normal(50, 10)) for a in asset_ids for k in range(first, last) for m in metrics]

    write(cycles([a.id for a in assets], 0, 20))
    return kind, site, assets, metrics, write, cycles


def _read(kind, asset_ids, metrics, end):
    """(window read, was it incremental, cold full read) at one moment."""
    start = _at(end - 3600)
    got, incremental = twin_window.recent_rows("t", "v1", asset_ids, metrics, start, _at(end), LIMIT)
    return got, incremental, timeseries.recent_rows_many(asset_ids, metrics, start, _at(end), limit=LIMIT)


def test_it_reads_only_new_rows_and_sees_what_a_full_read_sees(fleet):
    kind, site, assets, metrics, write, cycles = fleet
    ids = [a.id for a in assets]
    got, incremental, full = _read(kind, ids, metrics, T0 + 19.5)
    assert not incremental
    _same(got, full)

    write(cycles(ids, 20, 23))  # three new cycles
    write([(T0 + 18, ids[0], metrics[1], 999.0)])  # a late second reading of a time in the window (averaged)
    write([(T0 + 17.5, ids[1], metrics[2], -5.0)])  # a late reading at a time the window has not seen
    write([(T0 + 25, ids[2], metrics[0], 7.0)])  # stamped ahead of the next refresh's end
    write([(T0 - 500, ids[0], metrics[0], 1.0)])  # long before the window: changes nothing
    got, incremental, full = _read(kind, ids, metrics, T0 + 22.5)
    assert incremental == timeseries.has_insert_order(connection)
    _same(got, full)
    assert got[ids[1]][0][-LIMIT:].tolist().count(T0 + 17.5) == 1

    newcomer = make_asset(site, kind, None)
    write(cycles([newcomer.id], 0, 30))
    got, incremental, full = _read(kind, [*ids, newcomer.id], metrics, T0 + 26)  # the early reading's time has come
    _same(got, full)
    assert T0 + 25 in got[ids[2]][0].tolist()

    got, _incremental, full = _read(kind, ids[:2], metrics, T0 + 26.5)  # a subset of the fleet
    _same(got, full)


def test_it_reads_everything_again_when_the_table_was_rewritten_under_its_mark(fleet):
    kind, site, assets, metrics, write, cycles = fleet
    ids = [a.id for a in assets]
    _read(kind, ids, metrics, T0 + 19.5)
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {timeseries.TABLE}")
    write(cycles(ids, 100, 140))  # as many rows again: the newest rowid may be the old mark's
    got, incremental, full = _read(kind, ids, metrics, T0 + 139.5)
    assert not incremental
    _same(got, full)
    got, incremental, full = _read(kind, ids, metrics, T0 + 10)  # now went back: full read
    assert not incremental
    _same(got, full)


def test_it_gives_the_twins_an_incremental_refresh_computes_as_a_cold_refresh_does(asset_types, turbofan_model, fd001_path):
    site = make_site()
    metrics = {m.key: m.id for m in asset_types["turbofan"].metrics.all()}
    engines = engines_of(fd001_path)
    assets = [make_asset(site, asset_types["turbofan"], None) for _ in range(4)]
    for unit, asset in zip((72, 77, 84, 91), assets, strict=True):
        write_engine(asset, metrics, engines[unit][:60], T0)
    refresh_twins(now=_at(T0 + 59.5), broadcast=False)
    fields = ["asset_id", "health", "rul_median", "rul_low", "rul_high", "degradation_rate"]
    before = list(TwinState.objects.order_by("asset_id").values_list(*fields))
    for unit, asset in zip((72, 77, 84, 91), assets, strict=True):  # ten more cycles, then a late sensor reading
        write_engine(asset, metrics, engines[unit][60:70], T0 + 60)
    timeseries.write_rows([(_at(T0 + 55), assets[0].id, metrics["s4"], 1450.0)])  # late: before the last refresh

    warm = refresh_twins(now=_at(T0 + 69.5), broadcast=False)
    assert warm.incremental == int(timeseries.has_insert_order(connection))
    incremental_states = list(TwinState.objects.order_by("asset_id").values_list(*fields))
    twin_window.clear()
    cold = refresh_twins(now=_at(T0 + 69.5), broadcast=False)
    assert cold.incremental == 0 and cold.refreshed == warm.refreshed == 4
    assert list(TwinState.objects.order_by("asset_id").values_list(*fields)) == incremental_states
    assert incremental_states != before  # the new cycles moved the twins
