"""A planner's bad input is refused with every offending field named."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from tests.sim.factories import scenario, twin_asset
from twins.sim import (
    Policy,
    RulEstimate,
    ScenarioError,
    scenario_from_dict,
    scenario_to_dict,
    validate_scenario,
)


def errors_of(bad) -> dict[str, str]:
    with pytest.raises(ScenarioError) as caught:
        validate_scenario(bad)
    return caught.value.errors


def test_it_accepts_a_sound_scenario():
    validate_scenario(scenario())


def test_it_names_every_invalid_field_at_once():
    bad = scenario(
        assets=[twin_asset(health=1.5), twin_asset("b", rate=-0.1, rul=None)],
        hours_per_day=0,
        load_factor="heavy",
    )
    errors = errors_of(bad)
    assert set(errors) >= {
        "assets[0].health",
        "assets[1].rate",
        "hours_per_day",
        "load_factor",
    }
    assert "must be a number" in errors["load_factor"]
    assert "assets[0].health" in str(ScenarioError(errors))


def test_it_requires_a_rate_or_an_rul_estimate():
    errors = errors_of(scenario(assets=[twin_asset(rul=None, rate=None)]))
    assert "assets[0].rate" in errors


def test_it_refuses_an_rul_interval_that_does_not_bracket_the_median():
    bad = twin_asset(rul=RulEstimate(median=1000.0, low=1200.0, high=1500.0))
    assert "assets[0].rul.low" in errors_of(scenario(assets=[bad]))
    half = twin_asset(rul=RulEstimate(median=1000.0, low=800.0))
    assert "assets[0].rul" in errors_of(scenario(assets=[half]))


def test_it_refuses_duplicate_asset_ids():
    errors = errors_of(scenario(assets=[twin_asset("x"), twin_asset("x")]))
    assert "duplicate" in errors["assets[1].asset_id"]


def test_it_requires_the_parameter_of_each_policy():
    for name, field in [
        ("time_based", "interval_hours"),
        ("condition_based", "health_threshold"),
        ("rul_based", "lead_time_hours"),
    ]:
        errors = errors_of(scenario(policy=Policy(name=name)))
        assert f"policy.{field}" in errors
    assert "policy.name" in errors_of(scenario(policy=Policy(name="pray")))
    threshold = Policy(name="condition_based", health_threshold=1.0)
    assert "policy.health_threshold" in errors_of(scenario(policy=threshold))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("horizon_days", 1827),  # more than five years
        ("horizon_days", 0),
        ("replications", 10_001),
        ("replications", 0),
        ("crew_size", 0),
        ("crew_size", 51),
        ("hours_per_day", 24.5),
        ("days_per_week", 8),
        ("load_factor", 3.5),
        ("speed_factor", 0.05),
        ("ambient_delta_c", 80.0),
        ("spare_stock", -1),
        ("spare_lead_time_days", 400.0),
        ("seed", -1),
        ("cm_cost", -5.0),
    ],
)
def test_it_enforces_bounds(field, value):
    errors = errors_of(scenario(**{field: value}))
    assert field in errors


def test_it_bounds_the_total_work_of_a_scenario():
    big = scenario(
        assets=[twin_asset(f"a{i}") for i in range(200)],
        replications=10_000,
        horizon_days=1826,
    )
    assert "asset-years" in errors_of(big)["replications"]


def test_it_round_trips_through_json():
    original = scenario(
        policy=Policy(name="rul_based", lead_time_hours=300.0),
        assets=[twin_asset(), twin_asset("b", rul=None, rate=0.0004)],
    )
    data = json.loads(json.dumps(scenario_to_dict(original)))
    assert scenario_from_dict(data) == original
    # the dict is the dataclasses' own (scenario_to_dict skips asdict's deep copies)
    assert scenario_to_dict(original) == asdict(original)


def test_it_names_unknown_and_invalid_fields_in_dict_input():
    data = scenario_to_dict(scenario())
    data["colour"] = "blue"
    data["assets"][0]["health"] = -1
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(data)
    assert "colour" in caught.value.errors
    data.pop("colour")
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(data)
    assert "assets[0].health" in caught.value.errors
    data["assets"] = "pumps"
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(data)
    assert "assets" in caught.value.errors
