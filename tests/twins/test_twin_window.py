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


def test_it_reads_what_a_full_read_sees_when_the_table_was_rewritten_under_its_mark(fleet):
    kind, site, assets, metrics, write, cycles = fleet
    ids = [a.id for a in assets]
    _read(kind, ids, metrics, T0 + 19.5)
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {timeseries.TABLE}")
    write(cycles(ids, 100, 140))  # as many rows again: the newest rowid may be the old mark's
    got, incremental, full = _read(kind, ids, metrics, T0 + 139.5)
    # SQLite sees the rewrite (another row at its mark) and reads in full. PostgreSQL's write log
    # shows writes, not deletions: the new rows' assets are read anew from their earliest time
    # (a deletion alone shows at the next full read, within TWIN_FULL_READ_S).
    assert incremental == (connection.vendor == "postgresql")
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


@pytest.mark.postgres
def test_a_write_still_running_when_the_window_was_read_is_picked_up_once_it_commits(transactional_db):
    """Two ingest workers: one commits while the other's transaction, begun earlier, is still
    open. A reader must not step past the slower one's write (PostgreSQL's write log)."""
    import psycopg

    from tests.helpers import database_url_for_subprocess

    if connection.vendor != "postgresql":
        pytest.skip("the write log is PostgreSQL's")
    kind = make_asset_type(metrics=[(k, "", -1e9, 1e9) for k in ("a", "b")])
    metrics = [m.id for m in kind.metrics.order_by("key")]
    site = make_site()
    slow_asset, fast_asset = make_asset(site, kind, None), make_asset(site, kind, None)
    ids = [slow_asset.id, fast_asset.id]
    timeseries.write_rows([(_at(T0 + k), a, m, float(k)) for a in ids for k in range(10) for m in metrics])
    _read(kind, ids, metrics, T0 + 9.5)

    with psycopg.connect(database_url_for_subprocess()) as slow:  # a second worker's transaction, left open
        with slow.cursor() as cur:
            with cur.copy(f"COPY {timeseries.TABLE} (time, asset_id, metric_id, value) FROM STDIN") as copy:
                for m in metrics:
                    copy.write_row((_at(T0 + 10), slow_asset.id, m, 100.0))
            cur.execute(f"INSERT INTO {timeseries.WRITES} (min_time, assets) VALUES (%s, %s)", [_at(T0 + 10), [slow_asset.id]])
        timeseries.write_rows([(_at(T0 + 10), fast_asset.id, m, 200.0) for m in metrics])  # commits first
        got, incremental, full = _read(kind, ids, metrics, T0 + 10.5)
        assert incremental
        _same(got, full)
        assert got[slow_asset.id][0][-1] == T0 + 9  # not committed yet
        slow.commit()
    got, incremental, full = _read(kind, ids, metrics, T0 + 10.5)
    assert incremental
    _same(got, full)
    assert got[slow_asset.id][0][-1] == T0 + 10 and got[slow_asset.id][1][-1, 0] == 100.0
    twin_window.clear()
