"""The engine against maintenance theory, wherever a closed form exists.

Each comparison runs the engine's own replications (runner.simulate_arrays, no merge) and
asks the theoretical value to lie within the 99 % confidence interval of the simulated mean
(2.576 standard errors over independent replications). Configurations are stated per test:
continuous production, unlimited spares and crews unless said, jobs of 0.001 h where the
theory has instant renewals.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.sim.theory import (
    age_replacement_expected_cost,
    age_replacement_rate,
    base_stock_backorders,
    machine_repairman,
    optimal_age,
    poisson_backorders,
    renewal_function,
    renewal_reward,
    weibull_cdf,
)
from twins.sim import AssetInit, Policy, Scenario
from twins.sim.lifelaw import LifeLaw, fit_life_law
from twins.sim.recommend import recommend_replacement
from twins.sim.runner import simulate_arrays
from twins.sim.schedule import Schedule

Z_99 = 2.5758293035489004
INSTANT = 1e-3  # hours: a job that takes no time to speak of


def new_parts(count: int, shape: float, scale: float, **overrides) -> list[AssetInit]:
    """Assets with a new part (age 0) whose life is Weibull(shape, scale)."""
    median = scale * math.log(2.0) ** (1.0 / shape)
    values = dict(health=1.0, rate=1.0 / median, weibull_shape=shape, repair_hours=INSTANT,
                  pm_hours=INSTANT)
    values.update(overrides)
    return [AssetInit(f"m{i}", **values) for i in range(count)]


def assert_within_ci(samples: np.ndarray, expected: float) -> None:
    samples = np.asarray(samples, dtype=float).ravel()
    mean = samples.mean()
    half = Z_99 * samples.std(ddof=1) / math.sqrt(samples.size)
    assert abs(mean - expected) <= half, f"simulated {mean:.5g} ± {half:.3g}, theory {expected:.5g}"


def test_it_counts_failures_by_the_renewal_function_when_run_to_failure():
    # 10 assets x 150 replications, Weibull(2, 100 h) lives, 30 days around the clock
    assets = new_parts(10, 2.0, 100.0)
    scenario = Scenario(assets, horizon_days=30, replications=150, seed=5, spare_stock=None,
                        crew_size=10)
    law = fit_life_law(assets[0])
    assert (law.shape, law.scale, law.age) == pytest.approx((2.0, 100.0, 0.0))
    failures = simulate_arrays(scenario, 150)["failures"]
    assert_within_ci(failures, renewal_function(2.0, 100.0, 720.0))


def test_it_costs_an_age_replacement_policy_as_renewal_reward_theory_says():
    # Weibull(3, 100 h), Cp 1, Cf 5, replaced at the optimum age T*; 30 days, 10 x 150
    shape, scale, cp, cf = 3.0, 100.0, 1.0, 5.0
    best = optimal_age(shape, scale, cp, cf)
    assets = new_parts(10, shape, scale)
    scenario = Scenario(assets, horizon_days=30, replications=150, seed=6, spare_stock=None,
                        crew_size=10, policy=Policy("time_based", interval_hours=best))
    arrays = simulate_arrays(scenario, 150)
    cost = arrays["failures"] * cf + arrays["preventive"] * cp
    assert_within_ci(cost, age_replacement_expected_cost(shape, scale, best, cp, cf, 720.0))


def test_it_recommends_the_optimal_replacement_age_of_the_age_replacement_model():
    shape, scale, cp, cf = 3.0, 100.0, 1.0, 5.0
    law = LifeLaw(shape, scale, 0.0, "asset_shape")
    rec = recommend_replacement(law, cp, cf, Schedule(24.0, 7), horizon_h=8760.0)
    best = optimal_age(shape, scale, cp, cf)
    assert rec["interval_hours"] == pytest.approx(best, rel=0.01)
    assert rec["theory_cost_per_hour"] == pytest.approx(
        age_replacement_rate(shape, scale, best, cp, cf), rel=1e-3
    )
    assert rec["theory_run_to_failure_cost_per_hour"] == pytest.approx(
        cf / (scale * math.gamma(1 + 1 / shape)), rel=1e-3
    )


def test_the_recommended_age_is_no_worse_in_the_simulation_than_its_neighbours():
    # same lives for every age tried (common random numbers): 6 assets x 100, 60 days
    shape, scale, cp, cf = 3.0, 100.0, 1.0, 5.0
    law = LifeLaw(shape, scale, 0.0, "asset_shape")
    best = recommend_replacement(law, cp, cf, Schedule(24.0, 7), horizon_h=1440.0)[
        "interval_hours"
    ]
    rates = {}
    for factor in (0.5, 1.0, 2.0):
        scenario = Scenario(new_parts(6, shape, scale), horizon_days=60, replications=100,
                            seed=9, spare_stock=None, crew_size=6,
                            policy=Policy("time_based", interval_hours=best * factor))
        arrays = simulate_arrays(scenario, 100)
        rates[factor] = (arrays["failures"] * cf + arrays["preventive"] * cp).mean(axis=1)
    for neighbour in (0.5, 2.0):
        saved = rates[neighbour] - rates[1.0]  # paired: positive when the optimum is cheaper
        assert saved.mean() - Z_99 * saved.std(ddof=1) / math.sqrt(saved.size) > 0


def test_it_queues_failures_for_one_crew_like_the_machine_repairman_model():
    # 5 machines, exponential lives (mean 100 h), one crew, lognormal repairs (median 10 h,
    # log-sigma 0.25, the engine's), spares unlimited; 365 days x 60 replications
    assets = new_parts(5, 1.0, 100.0, repair_hours=10.0)
    scenario = Scenario(assets, horizon_days=365, replications=60, seed=7, spare_stock=None,
                        crew_size=1)
    arrays = simulate_arrays(scenario, 60)
    theory = machine_repairman(5, 0.01, 10.0, 0.25)
    horizon = 365 * 24.0
    assert_within_ci(arrays["crew_busy_h"] / horizon, theory["utilisation"])
    wait_per_failure = arrays["wait_h"].sum(axis=1) / arrays["failures"].sum(axis=1)
    assert_within_ci(wait_per_failure, theory["wait"])
    assert theory["wait"] > 1.0  # a real queue, not an empty one


def test_it_makes_every_failure_wait_the_lead_time_with_zero_stock():
    # one asset, no spare in stock, a part arrives 5 days after it is ordered: renewal with
    # cycles of life + lead time; 365 days x 300 replications
    lead_h = 120.0
    assets = new_parts(1, 2.0, 300.0)
    scenario = Scenario(assets, horizon_days=365, replications=300, seed=8, spare_stock=0,
                        spare_lead_time_days=lead_h / 24.0, crew_size=1)
    arrays = simulate_arrays(scenario, 300)
    t = np.linspace(0.0, 8760.0, 6001)
    shifted = weibull_cdf(np.maximum(t - lead_h, 0.0), 2.0, 300.0)
    expected = renewal_reward(shifted, weibull_cdf(t, 2.0, 300.0))[-1]
    assert_within_ci(arrays["failures"], expected)
    finished = arrays["failures"] > 0
    per_failure = arrays["failure_downtime_h"][finished] / arrays["failures"][finished]
    # each completed failure is down lead + repair; the last one may be cut by the horizon
    assert np.median(per_failure) == pytest.approx(lead_h, rel=0.01)


@pytest.mark.parametrize("stock", [3, 7])
def test_it_backorders_spares_like_a_base_stock_pool_under_poisson_demand(stock):
    # 400 assets with exponential lives (mean 4,000 h) share one pool of S spares, reordered
    # one for one and back 50 h later; crews never short (50 for instant repairs); 365 days
    # around the clock x 60 replications, the pool full at 0. With this many assets failures
    # are ~Poisson at 0.1/h (a waiting asset does not fail: the rate is (400 - E[B]) / 4,000,
    # 0.5 % lower with S = 3, found by fixed point), so by Palm's theorem the parts on order
    # are Poisson(rate x 50 h) and the assets waiting for a part are (X - S)+. Backorders are
    # counted as the time average of assets waiting for a part: waiting hours / horizon.
    assets, lead, horizon = 400, 50.0, 365 * 24.0
    mean_life = 4000.0
    scenario = Scenario(new_parts(assets, 1.0, mean_life), horizon_days=365, replications=60,
                        seed=21, spare_stock=stock, spare_lead_time_days=lead / 24.0,
                        crew_size=50)
    arrays = simulate_arrays(scenario, 60)
    rate = assets / mean_life
    for _ in range(50):
        rate = (assets - poisson_backorders(rate * lead, stock)) / mean_life
    assert_within_ci(arrays["failures"].sum(axis=1) / horizon, rate)
    expected = base_stock_backorders(rate, lead, stock, horizon)
    assert expected > 0.2  # assets do wait for parts: S is below the ~5 parts on order
    assert_within_ci(arrays["wait_h"].sum(axis=1) / horizon, expected)
