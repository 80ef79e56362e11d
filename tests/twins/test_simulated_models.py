"""Models of the demo asset types: run-to-failure histories from the simulator sources,
train_rul --simulated, and the twin of a simulated pump in operating hours and calendar days."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command

from ingest import timeseries
from tests.factories import make_asset, make_site
from twins.models import RulModel, TwinState
from twins.simulated_histories import simulated_fleet_histories, unit_history
from twins.twin_refresh import refresh_twins

pytestmark = pytest.mark.django_db
T0 = 1_790_000_040.0  # a whole minute: telemetry rows fall one per refresh bucket


def test_it_generates_deterministic_histories_that_end_at_failure():
    a = unit_history("centrifugal_pump", seed=5, life_s=2 * 3600.0, row_seconds=60.0, samples_per_row=4)
    b = unit_history("centrifugal_pump", seed=5, life_s=2 * 3600.0, row_seconds=60.0, samples_per_row=4)
    assert len(a["time"]) == 120 and a["time"][-1] == 120  # time in rows: RUL in rows of 60 s
    np.testing.assert_array_equal(a["vib_rms"], b["vib_rms"])
    # Worn at the end: more vibration, less flow than when new.
    assert a["vib_rms"][-10:].mean() > 1.5 * a["vib_rms"][:10].mean()
    assert a["flow_m3h"][-10:].mean() < a["flow_m3h"][:10].mean()
    data = simulated_fleet_histories("centrifugal_pump", units=3, life_hours=(1.0, 2.0))
    assert len(data.unit_ids) == 3 and set(data.signals) >= {"flow_m3h", "vib_rms"}
    with pytest.raises(ValueError, match="no simulator"):
        simulated_fleet_histories("turbofan")


def test_it_samples_realistic_lives_as_snippets_that_end_at_failure():
    data = simulated_fleet_histories("centrifugal_pump", units=2, seed=3)
    assert "16,000-32,000 operating hours" in data.description
    rul_h = data.rul() / 60.0  # rows of 60 s -> operating hours
    for start, stop in data.unit_bounds():
        assert np.all(np.diff(data.time[start:stop]) > 0)
        assert rul_h[stop - 1] == 0.0  # the last row is the failure
        # Snippets up to the cap (7,000 h for pumps) and some ages before it, where wear does not show.
        assert rul_h[start:stop].max() > 7_000.0 and (rul_h[start:stop] < 100.0).sum() >= 45
    vib = data.values[:, list(data.signals).index("vib_rms")]
    assert vib[rul_h < 200.0].mean() > 2.0 * vib[rul_h > 7_000.0].mean()


def test_it_states_the_lives_behind_a_simulated_model_for_the_what_if():
    from twins.rul_registry import life_statistics, simulated_serving

    life, beyond = life_statistics((16_000.0, 32_000.0), 7_000.0)
    assert life == pytest.approx(24_000.0, rel=0.01)
    # A pump with no visible wear has between the cap and a whole life left, most likely about half of one.
    assert 7_000.0 < beyond["p10"] < beyond["p50"] < beyond["p90"] < 32_000.0
    serving = simulated_serving(["vib_rms"], 60.0, (16_000.0, 32_000.0), 7_000.0)
    assert serving.life_hours == life and serving.to_json()["beyond_cap_hours"] == beyond


def test_it_trains_a_pump_model_in_hours_and_serves_the_twin_of_a_wearing_pump(var_dir, asset_types):
    out = StringIO()
    call_command("train_rul", "--simulated", "centrifugal_pump", "--units", "6", "--min-hours", "3", "--max-hours", "5", "--cap-hours", "4",
                 "--trees", "15", stdout=out)
    printed = json.loads(out.getvalue().strip().splitlines()[-1])
    model = RulModel.objects.get(version=printed["version"], is_active=True)
    assert model.asset_type_key == "centrifugal_pump" and model.rul_unit == "hours"
    assert model.meta["serving"]["row_seconds"] == 60.0

    # A pump that fails 4 h into its life (its samples stored as the ingest would, 1 row a minute).
    asset = make_asset(make_site(), asset_types["centrifugal_pump"], None)
    asset.hours_per_day = 12.0
    asset.save(update_fields=["hours_per_day"])
    metrics = {m.key: m.id for m in asset_types["centrifugal_pump"].metrics.all()}
    life = unit_history("centrifugal_pump", seed=424242, life_s=4 * 3600.0, row_seconds=60.0, samples_per_row=4)
    rows = []
    for i, _hours in enumerate(life["time"]):
        ts = datetime.fromtimestamp(T0 + i * 60.0, UTC)
        rows.extend((ts, asset.id, metrics[k], float(life[k][i])) for k in metrics)
    timeseries.write_rows(rows)

    seen = {}
    for minute in (60, 230):  # 1 h in (healthy) and 10 minutes before failure
        refresh_twins(now=datetime.fromtimestamp(T0 + minute * 60.0 + 30.0, UTC), broadcast=False)
        seen[minute] = TwinState.objects.get(asset=asset)
    late = seen[230]
    assert late.rul_unit == "hours"
    assert late.rul_median < seen[60].rul_median and late.health < seen[60].health
    # True RUL: 3 h, then 10 minutes (the model's cap is 4 h, its units lived 3 to 5 h).
    assert 1.0 < seen[60].rul_median < 6.0 and seen[60].rul_low <= 3.0 <= seen[60].rul_high + 1.0
    assert late.rul_median < 1.0
    assert late.rul_days_median == pytest.approx(late.rul_median / 12.0)
    # The rate is the estimate's pace: health reaches 0 when the RUL runs out.
    assert late.degradation_rate == pytest.approx(late.health / late.rul_median)
    assert late.details["rows_used"] == late.details["window"]


    # The same life played 60 times faster (the demo's --speedup 60: one row per wall-clock
    # second) reads the same once the refresh knows the time scale.
    fast = make_asset(asset.site, asset_types["centrifugal_pump"], None)
    fast.hours_per_day = 12.0
    fast.save(update_fields=["hours_per_day"])
    timeseries.write_rows([(datetime.fromtimestamp(T0 + (ts.timestamp() - T0) / 60.0, UTC), fast.id, m, v) for ts, _a, m, v in rows])
    refresh_twins(asset_ids=[fast.id], now=datetime.fromtimestamp(T0 + 230 + 0.5, UTC), broadcast=False, time_scale=60.0)
    scaled = TwinState.objects.get(asset=fast)
    assert scaled.rul_median == pytest.approx(late.rul_median) and scaled.rul_days_median == pytest.approx(late.rul_days_median)
    assert any("60x real time" in a for a in scaled.details["assumptions"])
