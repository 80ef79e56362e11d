"""The baseline reproduces the live twin: calibration from TwinState through the engine."""

from __future__ import annotations

import pytest

from tests.factories import make_asset, make_asset_type, make_site
from tests.scenarios.factories import PARAMS, make_twin
from twins.models import RulModel
from twins.scenarios import const, jobs
from twins.scenarios.calibration import calibrate_assets
from twins.scenarios.services import create_scenario, start_run

pytestmark = pytest.mark.django_db


def baseline_of(site, assets, **changes):
    params = {**PARAMS, "replications": 400, "horizon_days": 1095, **changes}
    scenario = create_scenario(None, name="calibration", site=site, assets=assets, params=params)
    run = start_run(scenario.id, dispatch=False)
    assert jobs.run_all_chunks(run.id)["status"] == "done"
    run.refresh_from_db()
    return run, {a["asset_id"]: a for a in run.results[const.VARIANT_BASELINE]["assets"]}


def test_it_agrees_with_the_twin_rul_in_hours_cycles_and_without_a_twin():
    site, kind = make_site(), make_asset_type()
    in_hours, in_cycles, no_twin = (make_asset(site, kind, None, name=n) for n in ("Pump A", "Turbofan B", "Fan C"))
    for asset in (in_hours, in_cycles, no_twin):
        asset.hours_per_day = 16.0
        asset.save()
    make_twin(in_hours, health=0.55, median=2000.0, low=1400.0, high=2900.0, rul_days_median=2000.0 / 16)
    RulModel.objects.create(version="fd001-test", asset_type_key="turbofan", artifact_path="/nonexistent", meta={"hours_per_cycle": 10.0})
    make_twin(in_cycles, health=0.7, rate=None, median=150.0, low=100.0, high=210.0, unit="cycles", model_version="fd001-test")

    run, baseline = baseline_of(site, [in_hours, in_cycles, no_twin])

    ttf = baseline[in_hours.key]["ttf_operating_hours"]
    assert ttf["p50"] == pytest.approx(2000.0, rel=0.10)
    # one Weibull law for the part (its age known) and its replacements: the median is the
    # twin's; the interval as near as a Weibull of that age allows (its own p10/p90 stated)
    assert ttf["p10"] == pytest.approx(1400.0, rel=0.10) and ttf["p90"] == pytest.approx(2900.0, rel=0.15)
    # At the asset's 16 h a day, the calendar median agrees with the twin's RUL in days.
    assert baseline[in_hours.key]["ttf_days"]["p50"] == pytest.approx(2000.0 / 16, rel=0.10)
    # 150 cycles at the model's 10 operating hours per cycle.
    assert baseline[in_cycles.key]["ttf_operating_hours"]["p50"] == pytest.approx(1500.0, rel=0.10)
    # No twin: the labelled default, half of a 20,000 h life.
    assert baseline[no_twin.key]["ttf_operating_hours"]["p50"] == pytest.approx(const.DEFAULT_HEALTH * const.DEFAULT_LIFE_HOURS, rel=0.10)
    notes = {n["name"]: n for n in run.calibration}
    assert notes["Fan C"]["source"] == "default" and "DEFAULT ASSUMPTION" in notes["Fan C"]["statement"]
    assert "10 operating hours per cycle" in notes["Turbofan B"]["statement"]
    assert "16 h a day" in notes["schedule"]["statement"]


def test_it_takes_one_cycle_as_one_hour_when_nobody_says_otherwise():
    site, kind = make_site(), make_asset_type()
    engine = make_asset(site, kind, None, name="Engine")
    make_twin(engine, health=0.6, rate=None, median=900.0, low=600.0, high=1300.0, unit="cycles")
    [calibrated] = calibrate_assets([engine])
    assert calibrated.asset.rul.median == 900.0
    assert "1 cycle = 1 operating hour" in calibrated.note["statement"]


def test_it_reads_hours_per_cycle_from_the_serving_meta_or_the_twins_own_calendar_rul():
    site, kind = make_site(), make_asset_type()
    served, derived = make_asset(site, kind, None, name="Served"), make_asset(site, kind, None, name="Derived")
    derived.hours_per_day = 12.0
    derived.save()
    RulModel.objects.create(version="fd001-serving", asset_type_key="turbofan", artifact_path="/nonexistent",
                            meta={"serving": {"rul_unit": "cycles", "hours_per_row": 1.5}})
    make_twin(served, rate=None, median=100.0, low=80.0, high=130.0, unit="cycles", model_version="fd001-serving")
    # 200 cycles shown as 50 days at 12 h a day: the twin took 3 operating hours per cycle.
    make_twin(derived, rate=None, median=200.0, low=150.0, high=260.0, unit="cycles", rul_days_median=50.0)
    by_name = {c.asset.name: c for c in calibrate_assets([served, derived])}
    assert by_name["Served"].asset.rul.median == pytest.approx(150.0) and "RUL model fd001-serving" in by_name["Served"].note["statement"]
    assert by_name["Derived"].asset.rul.median == pytest.approx(600.0)
    assert by_name["Derived"].asset.rul.low == pytest.approx(450.0) and "own RUL in days" in by_name["Derived"].note["statement"]


def test_it_clips_a_failed_twin_and_ignores_an_interval_that_does_not_bracket_the_median():
    site, kind = make_site(), make_asset_type()
    asset = make_asset(site, kind, None)
    make_twin(asset, health=0.0, median=500.0, low=600.0, high=700.0)
    [calibrated] = calibrate_assets([asset])
    assert calibrated.asset.health == const.MIN_HEALTH
    assert calibrated.asset.rul.low is None and calibrated.asset.rul.median == 500.0
    assert "interval ignored" in calibrated.note["statement"] and "clipped" in calibrated.note["statement"]


def test_it_reads_a_twin_at_the_models_cap_as_at_least_the_cap_and_ages_parts_by_the_training_lives():
    site, kind = make_site(), make_asset_type()
    healthy, wearing = make_asset(site, kind, None, name="Healthy"), make_asset(site, kind, None, name="Wearing")
    beyond = {"p10": 9000.0, "p50": 19000.0, "p90": 29000.0, "cap": 7000.0}
    RulModel.objects.create(version="pump-sim", asset_type_key="centrifugal_pump", artifact_path="/nonexistent",
                            meta={"serving": {"hours_per_row": 1 / 60, "life_hours": 24000.0, "beyond_cap_hours": beyond}})
    details = {"cap_rul": 7000.0}
    make_twin(healthy, health=1.0, rate=None, median=7000.0, low=4300.0, high=7000.0, model_version="pump-sim", details=details)
    make_twin(wearing, health=0.3, rate=0.3 / 2100.0, median=2100.0, low=1300.0, high=3000.0, model_version="pump-sim", details=details)

    at_cap, below = calibrate_assets([healthy, wearing])

    # The cap is a lower bound: the remaining life comes from the lives the model was trained on.
    assert (at_cap.asset.rul.median, at_cap.asset.rul.low, at_cap.asset.rul.high) == (19000.0, 9000.0, 29000.0)
    assert "beyond the model's horizon" in at_cap.note["statement"]
    assert at_cap.asset.age_hours == pytest.approx(24000.0 - 19000.0)
    # Below the cap the twin's own estimate holds; a new part lives the median training life.
    assert (below.asset.rul.median, below.asset.rul.low, below.asset.rul.high) == (2100.0, 1300.0, 3000.0)
    assert below.asset.rate == pytest.approx(1 / 24000.0) and below.asset.age_hours == pytest.approx(24000.0 - 2100.0)
