"""Twin refresh against the real telemetry store: held-out C-MAPSS engines replayed into the
telemetry table are tracked within tolerance and mostly inside the 80% interval; calendar days
follow the asset's operating profile; snapshots are throttled; the query count is fixed."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from edge_node.agent.sources.cmapss import engines_of
from tests.factories import make_asset, make_site
from tests.twins.conftest import write_engine
from twins import twin_window
from twins.models import TwinSnapshot, TwinState
from twins.twin_refresh import calendar_days, refresh_twins

T0 = 1_790_000_000.0  # epoch seconds; one cycle per second of replay


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@pytest.fixture
def turbofans(asset_types, turbofan_model, fd001_path):
    """A factory: assets replaying held-out engines (all cycles written, one per second from T0)."""
    site = make_site()
    metrics = {m.key: m.id for m in asset_types["turbofan"].metrics.all()}
    engines = engines_of(fd001_path)

    def make(units, hours_per_day: float = 24.0, rows: int | None = None):
        made = []
        for unit in units:
            asset = make_asset(site, asset_types["turbofan"], None, name=f"Engine {unit}")
            asset.hours_per_day = hours_per_day
            asset.save(update_fields=["hours_per_day"])
            data = engines[unit] if rows is None else engines[unit][:rows]
            write_engine(asset, metrics, data, T0)
            made.append((asset, len(engines[unit])))
        return made

    return make


def test_it_tracks_the_true_rul_of_held_out_engines_replayed_into_telemetry(turbofans, turbofan_model):
    engines = turbofans(range(71, 83))
    cap = turbofan_model.meta["cap"]
    errors, inside, late_errors = [], [], []
    health_early, health_late = [], []
    for cycle in (40, 80, 120, 160, 200, 240):
        # The refresh at this moment sees every engine's readings up to this cycle.
        result = refresh_twins(now=_at(T0 + cycle - 1 + 0.5), broadcast=False)
        live = [(a, life) for a, life in engines if life > cycle]
        assert result.refreshed == len(engines)
        states = {s.asset_id: s for s in TwinState.objects.filter(asset_id__in=[a.id for a, _ in live])}
        for asset, life in live:
            s = states[asset.id]
            true = min(life - cycle, cap)
            errors.append(s.rul_median - true)
            inside.append(s.rul_low <= true <= s.rul_high)
            if life - cycle <= 40:
                late_errors.append(abs(s.rul_median - true))
            (health_early if cycle == 40 else health_late if life - cycle <= 30 else []).append(s.health)
    rmse = float(np.sqrt(np.mean(np.square(errors))))
    assert len(errors) > 40
    assert rmse < 30, f"RMSE {rmse:.1f} cycles against the capped true RUL"
    assert np.mean(inside) >= 0.6, f"only {np.mean(inside):.0%} of true RULs inside the 80% interval"
    assert late_errors and np.mean(late_errors) < 20
    assert np.mean(health_late) < np.mean(health_early) - 0.4


def test_it_states_rul_in_cycles_and_calendar_days_at_the_operating_profile(turbofans, turbofan_model):
    (day_shift, _), (round_clock, _) = (turbofans([75], hours_per_day=8.0, rows=120)[0], turbofans([75], hours_per_day=24.0, rows=120)[0])
    refresh_twins(now=_at(T0 + 119.5), broadcast=False)
    a, b = TwinState.objects.get(asset=day_shift), TwinState.objects.get(asset=round_clock)
    assert a.rul_unit == "cycles" and a.model_version == turbofan_model.version
    assert a.rul_median == pytest.approx(b.rul_median)
    # 1.5 operating hours per cycle (the registered assumption), 8 h a day vs 24 h a day.
    assert a.rul_days_median == pytest.approx(a.rul_median * 1.5 / 8.0)
    assert b.rul_days_median == pytest.approx(b.rul_median * 1.5 / 24.0)
    assert a.rul_days_low <= a.rul_days_median <= a.rul_days_high
    assert a.details["metrics"]["rmse"] == turbofan_model.metrics["rmse"]
    assert any("1.5 operating hours per cycle" in x for x in a.details["assumptions"])
    assert a.latest["s4"]["value"] > 0


def test_it_converts_operating_hours_to_calendar_days():
    assert calendar_days(48.0, 8.0) == pytest.approx(6.0)
    assert calendar_days(48.0, 24.0) == pytest.approx(2.0)
    assert calendar_days(48.0, 0.0) is None  # a stopped asset does not use up its life
    assert calendar_days(None, 8.0) is None


def test_it_appends_at_most_one_snapshot_per_asset_per_minute(turbofans):
    (asset, _), = turbofans([80], rows=100)
    base = (T0 // 60 + 1) * 60  # the start of a minute, after the written cycles
    for offset in (0.0, 20.0, 59.0, 61.0):
        refresh_twins(now=_at(base + offset), broadcast=False)
    assert TwinSnapshot.objects.filter(asset=asset).count() == 2
    assert TwinState.objects.filter(asset=asset).count() == 1


def test_it_skips_assets_without_telemetry_and_keeps_them_out_of_the_twins(turbofans, asset_types):
    (asset, _), = turbofans([81], rows=60)
    silent = make_asset(asset.site, asset_types["turbofan"], None)
    result = refresh_twins(now=_at(T0 + 59.5), broadcast=False)
    assert (result.refreshed, result.without_data) == (1, 1)
    assert not TwinState.objects.filter(asset=silent).exists()


def test_it_refreshes_many_twins_with_a_fixed_number_of_queries(turbofans, django_assert_max_num_queries):
    turbofans(range(71, 76), rows=50)
    with CaptureQueriesContext(connection) as few:
        assert refresh_twins(now=_at(T0 + 49.5), broadcast=False).refreshed == 5
    with CaptureQueriesContext(connection) as few_again:  # from the kept window where the store allows it
        assert refresh_twins(now=_at(T0 + 49.5 + 60), broadcast=False).refreshed == 5
    turbofans(list(range(76, 101)) * 2, rows=50)
    twin_window.clear()
    # models, assets, metrics, telemetry (SQLite: the insert mark and the readings up to it, or
    # from the kept window the mark's check and the rows since; PostgreSQL: the dialect check and
    # a savepoint around the COPY), latest values, savepoint, previous states, state upsert,
    # snapshot insert, release, and on PostgreSQL the asset types' refresh locks (one query to
    # take them, one to release them): whatever the fleet size.
    with django_assert_max_num_queries(13), CaptureQueriesContext(connection) as many:
        assert refresh_twins(now=_at(T0 + 49.5 + 120), broadcast=False).refreshed == 55
    with CaptureQueriesContext(connection) as many_again:
        refresh_twins(now=_at(T0 + 49.5 + 180), broadcast=False)
    assert (len(many), len(many_again)) == (len(few), len(few_again))


def test_it_fills_a_metric_gap_with_its_previous_value_and_refuses_a_metric_never_seen():
    from twins.twin_refresh import history_matrix

    nan = float("nan")
    filled = history_matrix(np.array([[nan, 1.0], [2.0, nan], [nan, 3.0], [4.0, nan]]))
    np.testing.assert_array_equal(filled, [[2.0, 1.0], [2.0, 1.0], [2.0, 3.0], [4.0, 3.0]])
    assert history_matrix(np.array([[nan, 1.0], [nan, 2.0]])) is None


def test_it_runs_the_periodic_refresh_as_a_celery_task_on_the_beat_schedule(asset_types, turbofan_model, fd001_path, settings):
    from twins.tasks import refresh_twins_task
    from web.celery import app

    asset = make_asset(make_site(), asset_types["turbofan"], None)
    metrics = {m.key: m.id for m in asset_types["turbofan"].metrics.all()}
    write_engine(asset, metrics, engines_of(fd001_path)[85][:60], time.time() - 120)  # the last two minutes
    assert settings.CELERY_BEAT_SCHEDULE["twins-refresh"]["task"] == refresh_twins_task.name
    assert refresh_twins_task.name in app.tasks
    first, again = refresh_twins_task(), refresh_twins_task()
    assert (first["refreshed"], first["without_data"], first["snapshots"]) == (1, 0, 1)
    assert again["refreshed"] == 1 and TwinState.objects.filter(asset=asset).count() == 1  # idempotent: one state per asset
    assert TwinState.objects.get(asset=asset).model_version == turbofan_model.version


def test_one_refresh_at_a_time_per_asset_type_across_processes(turbofans, postgres):
    """Another Celery worker (here: another PostgreSQL session) refreshing the turbofans holds
    their type's lock: this refresh skips the type instead of computing it twice."""
    import psycopg

    from twins.twin_refresh import TWIN_REFRESH_LOCK_CLASS

    (asset, _), = turbofans([81], rows=60)
    s = connection.settings_dict
    with psycopg.connect(host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"], password=s["PASSWORD"] or None, dbname=s["NAME"], autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [TWIN_REFRESH_LOCK_CLASS, "turbofan"])
        skipped = refresh_twins(now=_at(T0 + 59.5), broadcast=False)
        assert (skipped.refreshed, skipped.skipped_types) == (0, ["turbofan"])
        assert not TwinState.objects.filter(asset=asset).exists()
        other.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [TWIN_REFRESH_LOCK_CLASS, "turbofan"])
    done = refresh_twins(now=_at(T0 + 59.5), broadcast=False)
    assert (done.refreshed, done.skipped_types) == (1, [])
