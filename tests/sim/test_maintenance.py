"""Maintenance the way plants do it: one life law, the shift's end, inspections, off-shift
jobs, RUL forecasts that narrow, spare pools per asset type."""

from __future__ import annotations

import numpy as np
import pytest

from tests.sim.factories import scenario, twin_asset
from twins.sim import AssetInit, Policy, RulEstimate
from twins.sim.engine import Draws, _contention_free, build_plan, simulate_replication
from twins.sim.lifelaw import fit_life_law
from twins.sim.runner import simulate_arrays
from twins.sim.schedule import Schedule


@pytest.mark.parametrize(("hours", "days"), [(8.0, 5), (16.0, 5), (8.0, 6), (24.0, 5), (12.0, 7)])
def test_it_maps_every_shift_end_to_that_shift_not_the_next(hours, days):
    schedule = Schedule(hours, days)
    shifts = np.arange(1, 3 * days + 1)  # every shift end of three weeks
    op = shifts * hours
    week, day = np.divmod(shifts - 1, days)
    end_of_shift = week * 168.0 + day * 24.0 + hours
    assert [schedule.to_calendar(x) for x in op] == pytest.approx(list(end_of_shift))
    assert schedule.to_calendar_array(op) == pytest.approx(end_of_shift)
    assert schedule.to_operating_array(end_of_shift) == pytest.approx(op)
    assert schedule.to_calendar(0.0) == 0.0


def test_the_issue_examples_of_the_shift_end():
    one_shift = Schedule(8.0, 5)
    assert one_shift.to_calendar(8.0) == 8.0  # not 24
    assert one_shift.to_calendar(800.0) == 3296.0  # not 3,360


def test_a_new_part_lives_the_same_law_as_first_life_and_as_a_replacement():
    new = twin_asset(health=1.0, rul=RulEstimate(median=1000.0, low=629.0, high=1593.0))
    law = fit_life_law(new)
    assert law.age == 0.0
    assert law.residual_quantile([0.1, 0.5, 0.9]) == pytest.approx(
        law.new_quantile([0.1, 0.5, 0.9])
    )
    # the interval's width moves the law continuously: [m, m] and [m-1, m+1] alike
    exact = fit_life_law(twin_asset(rul=RulEstimate(2000.0, 2000.0, 2000.0)))
    near = fit_life_law(twin_asset(rul=RulEstimate(2000.0, 1999.0, 2001.0)))
    assert near.shape == pytest.approx(exact.shape, rel=1e-3)
    assert near.residual_quantile(0.9) == pytest.approx(exact.residual_quantile(0.9), rel=1e-3)


def test_a_part_near_its_known_life_keeps_a_sane_new_part_life():
    # the demo's case: 34,000 h old, 300 h left, new parts known to live ~34,000 h
    old = AssetInit("old", health=0.05, rul=RulEstimate(300.0, 200.0, 450.0), age_hours=34_000.0,
                    new_life_hours=34_000.0)
    law = fit_life_law(old)
    assert law.residual_median == pytest.approx(300.0)
    assert law.new_median > 0.8 * 34_000.0


def test_the_rul_policy_never_replaces_a_part_at_installation():
    # a lead time far above every life: each forecast is under it from installation on, so
    # acting on it would replace every new part at once; parts run to failure instead
    short = [twin_asset(f"s{i}", health=1.0, rul=RulEstimate(300.0, 200.0, 450.0)) for i in range(4)]
    arrays = simulate_arrays(
        scenario(assets=short, policy=Policy("rul_based", lead_time_hours=5000.0)), 60
    )
    assert arrays["preventive"].sum() == 0
    assert arrays["failures"].mean() > 5


def test_inspections_that_miss_let_parts_fail():
    assets = [twin_asset(f"c{i}") for i in range(4)]
    continuous = simulate_arrays(
        scenario(assets=assets, policy=Policy("condition_based", health_threshold=0.1)), 100
    )
    sparse = simulate_arrays(
        scenario(assets=assets, policy=Policy("condition_based", health_threshold=0.1,
                                              inspection_interval_hours=500.0,
                                              detection_probability=0.5)), 100
    )
    assert continuous["failures"].sum() == 0
    assert sparse["failures"].mean() > 0.2


def test_off_shift_jobs_lose_no_production():
    assets = [twin_asset(f"o{i}") for i in range(3)]
    common = dict(assets=assets, hours_per_day=8.0, days_per_week=5, crew_size=3,
                  horizon_days=730)
    mid_shift = simulate_arrays(
        scenario(**common, policy=Policy("time_based", interval_hours=600.0)), 60
    )
    off_shift = simulate_arrays(
        scenario(**common, policy=Policy("time_based", interval_hours=600.0, off_shift=True)), 60
    )
    lost_pm = off_shift["downtime_h"] - off_shift["failure_downtime_h"]
    assert off_shift["preventive"].sum() > 0 and lost_pm.max() == pytest.approx(0.0, abs=1e-3)
    assert (mid_shift["downtime_h"] - mid_shift["failure_downtime_h"]).mean() > 1.0


def test_spare_parts_are_pooled_per_asset_type():
    failing = RulEstimate(median=200.0, low=150.0, high=260.0)
    same = [twin_asset(f"p{i}", rul=failing, asset_type="pump") for i in range(2)]
    mixed = [twin_asset("p0", rul=failing, asset_type="pump"),
             twin_asset("f0", rul=failing, asset_type="fan")]
    common = dict(spare_stock=1, spare_lead_time_days=30.0, crew_size=2, horizon_days=10)
    shared = simulate_arrays(scenario(assets=same, **common), 50)
    pooled = simulate_arrays(scenario(assets=mixed, **common), 50)
    assert shared["wait_h"].sum(axis=1).mean() > 5.0  # the second failure waits for a part
    assert pooled["wait_h"].sum() == 0.0  # each type has its own spare


@pytest.mark.parametrize("policy", [
    Policy(), Policy("time_based", interval_hours=900.0, off_shift=True),
    Policy("condition_based", health_threshold=0.2, inspection_interval_hours=300.0,
           detection_probability=0.7),
    Policy("rul_based", lead_time_hours=300.0),
])
@pytest.mark.parametrize("stock", [1, 2])
def test_the_fast_path_gives_exactly_what_simpy_gives_when_no_crew_is_short(policy, stock):
    # parts run out (1-2 per type, 3 days' lead) and jobs tie at shift ends: the fast path
    # matches parts to jobs like SimPy's store, to the bit
    assets = [twin_asset(f"x{i}", rul=RulEstimate(600.0, 400.0, 900.0), asset_type=f"t{i % 2}")
              for i in range(6)]
    plan = build_plan(scenario(assets=assets, policy=policy, crew_size=3, spare_stock=stock,
                               spare_lead_time_days=3.0, hours_per_day=16.0, days_per_week=5))
    fast_used = waited = 0
    for replication in range(40):
        key = [3, replication]
        fast = _contention_free(plan, Draws(key, plan.n_assets))
        slow = simulate_replication(plan, key, fast=False)
        if fast is not None:
            fast_used += 1
            waited += sum(fast.wait_h) > 0
            assert fast == slow
        assert simulate_replication(plan, key) == slow
    assert fast_used >= 5 and (waited >= 1 or stock > 1)  # parts were short on the fast path
