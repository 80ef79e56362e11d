"""What the planner reads off a scenario: load, heat, policies, crews and spares change it."""

from __future__ import annotations

import itertools

import pytest

from tests.sim.factories import fleet, scenario, twin_asset
from twins.sim import Policy, RulEstimate, run


def test_it_gives_a_shorter_rul_under_more_load():
    base = run(scenario())["assets"][0]
    loaded = run(scenario(load_factor=1.3))["assets"][0]
    assert loaded["rul_operating_hours"]["p50"] < base["rul_operating_hours"]["p50"]
    assert loaded["rul_days"]["p10"] < base["rul_days"]["p10"]
    assert loaded["failure_probability_horizon"] >= base["failure_probability_horizon"]


def test_it_halves_thermal_life_for_ten_degrees_more():
    thermal = [twin_asset(bearing_share=0.0)]
    base = run(scenario(assets=thermal))["assets"][0]["rul_operating_hours"]
    hot = run(scenario(assets=thermal, ambient_delta_c=10.0))["assets"][0][
        "rul_operating_hours"
    ]
    for quantile in ("p10", "p50", "p90"):
        assert hot[quantile] / base[quantile] == pytest.approx(0.5, rel=1e-3)


def test_it_has_fewer_failures_but_costs_more_maintenance_with_preventive_replacement():
    assets = fleet(5, pm_cost=2_000.0, cm_cost=2_500.0)
    rtf = run(scenario(assets=assets))["fleet"]
    preventive = run(
        scenario(assets=assets, policy=Policy("time_based", interval_hours=800.0))
    )
    planned = preventive["fleet"]
    assert planned["expected_failures"] < rtf["expected_failures"]
    assert planned["expected_preventive"] > 0 and rtf["expected_preventive"] == 0
    assert planned["maintenance_cost"]["mean"] > rtf["maintenance_cost"]["mean"]


def test_it_avoids_failures_with_condition_and_rul_based_policies():
    rtf = run(scenario(assets=fleet(4)))["fleet"]["expected_failures"]
    condition = run(
        scenario(
            assets=fleet(4), policy=Policy("condition_based", health_threshold=0.15)
        )
    )
    rul = run(
        scenario(assets=fleet(4), policy=Policy("rul_based", lead_time_hours=300.0))
    )
    assert rtf > 4  # every asset fails at least once in the year
    # monitored continuously, with crews and parts at hand: nothing fails before its threshold
    assert condition["fleet"]["expected_failures"] == 0
    assert rul["fleet"]["expected_failures"] < 0.2 * rtf
    assert rul["fleet"]["expected_preventive"] > 0


def test_it_queues_repairs_when_one_crew_serves_ten_failing_assets():
    failing = fleet(
        10, rul=RulEstimate(median=200.0, low=150.0, high=260.0), repair_hours=48.0
    )
    one = run(scenario(assets=failing, crew_size=1, replications=100))
    ten = run(scenario(assets=failing, crew_size=10, replications=100))
    assert one["fleet"]["wait_hours"]["mean"] > 0
    assert ten["fleet"]["wait_hours"]["mean"] == 0
    assert (
        one["fleet"]["downtime_hours"]["mean"] > ten["fleet"]["downtime_hours"]["mean"]
    )
    assert one["fleet"]["availability"]["mean"] < ten["fleet"]["availability"]["mean"]
    assert one["fleet"]["crew_utilisation"] > ten["fleet"]["crew_utilisation"]


def test_it_makes_repairs_wait_for_spare_parts_lead_time():
    failing = [twin_asset(rul=RulEstimate(median=200.0, low=150.0, high=260.0))]
    stocked = run(scenario(assets=failing, spare_stock=5, replications=100))["assets"][
        0
    ]
    empty = run(
        scenario(
            assets=failing, spare_stock=0, spare_lead_time_days=10.0, replications=100
        )
    )["assets"][0]
    assert stocked["wait_hours"]["mean"] == 0
    # every repair waits the full 240 h lead time for its part
    per_failure = empty["wait_hours"]["mean"] / empty["expected_failures"]
    assert per_failure == pytest.approx(240.0, rel=0.02)
    assert empty["downtime_hours"]["mean"] > stocked["downtime_hours"]["mean"]


def test_it_accrues_wear_only_in_production_hours():
    asset = [twin_asset(rul=RulEstimate(median=3000.0, low=2500.0, high=3600.0))]
    around_the_clock = run(scenario(assets=asset))["assets"][0]
    one_shift = run(scenario(assets=asset, hours_per_day=8.0, days_per_week=5))[
        "assets"
    ][0]
    assert one_shift["rul_operating_hours"] == around_the_clock["rul_operating_hours"]
    # 3,000 operating hours take 125 days around the clock, ~525 days on 40 h a week
    assert around_the_clock["rul_days"]["p50"] == pytest.approx(125.0, rel=0.05)
    assert one_shift["rul_days"]["p50"] == pytest.approx(3000 / 40 * 7, rel=0.05)
    assert (
        one_shift["failure_probability_horizon"]
        < around_the_clock["failure_probability_horizon"]
    )


def test_it_gives_monotone_failure_probability_curves():
    result = run(scenario(assets=fleet(3)))
    grid = result["day_grid"]
    assert grid[0] == 0 and grid[-1] == 365
    for asset in result["assets"]:
        curve = asset["failure_probability"]
        assert len(curve) == len(grid)
        assert all(a <= b for a, b in itertools.pairwise(curve))
        assert curve[-1] == asset["failure_probability_horizon"]
        assert (
            sum(asset["ttf_histogram"]["counts"]) + asset["ttf_histogram"]["above"]
            == 300
        )
    assert result["fleet"]["expected_failed_assets"][-1] == pytest.approx(
        sum(a["failure_probability_horizon"] for a in result["assets"]), abs=1e-3
    )
