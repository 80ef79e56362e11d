"""The baseline reproduces the live twin: its RUL estimate and real run-to-failure lives."""

from __future__ import annotations

import numpy as np
import pytest

from tests.sim.factories import scenario, twin_asset
from twins.rul.const import FD001_TRAIN
from twins.sim import RulEstimate, run
from twins.sim.lifelaw import fit_life_law

CMAPSS = FD001_TRAIN


def test_it_agrees_with_the_twin_rul_estimate_in_the_baseline():
    pump = twin_asset(rul=RulEstimate(median=2000.0, low=1400.0, high=2900.0))
    baseline = run(
        scenario(
            assets=[pump],
            replications=1000,
            hours_per_day=16.0,
            days_per_week=5,
            horizon_days=730,
        )
    )
    ttf = baseline["assets"][0][
        "ttf_operating_hours"
    ]  # first failures seen by the simulation
    assert ttf["p50"] == pytest.approx(2000.0, rel=0.05)
    # a Weibull part 1,333 h old cannot have a right-skewed residual: the law's own p10/p90
    # (stated in the assumptions) are what the simulation reproduces, near the twin's interval
    law = fit_life_law(pump)
    assert ttf["p10"] == pytest.approx(law.residual_quantile(0.1), rel=0.05)
    assert ttf["p90"] == pytest.approx(law.residual_quantile(0.9), rel=0.05)
    assert ttf["p10"] == pytest.approx(1400.0, rel=0.10)
    assert ttf["p90"] == pytest.approx(2900.0, rel=0.15)


def test_it_calibrates_from_a_rate_when_the_twin_gives_no_rul():
    motor = twin_asset(
        rul=None, health=0.5, rate=0.0002
    )  # 2,500 h left at 0.0002 per hour
    baseline = run(scenario(assets=[motor], replications=1000))
    assert baseline["assets"][0]["ttf_operating_hours"]["p50"] == pytest.approx(
        2500.0, rel=0.10
    )


def test_it_reproduces_real_run_to_failure_lives_from_cmapss():
    table = np.loadtxt(CMAPSS, usecols=(0, 1))
    lives = np.array(
        [table[table[:, 0] == unit, 1].max() for unit in np.unique(table[:, 0])]
    )
    hours = lives * 10.0  # one C-MAPSS flight cycle taken as ten operating hours
    p10, p50, p90 = np.quantile(hours, [0.1, 0.5, 0.9])
    engine = twin_asset(
        "fd001", health=1.0, rul=RulEstimate(median=p50, low=p10, high=p90)
    )
    result = run(scenario(assets=[engine], replications=1000, horizon_days=365))
    ttf = result["assets"][0]["ttf_operating_hours"]
    assert ttf["p50"] == pytest.approx(p50, rel=0.10)
    assert ttf["p10"] == pytest.approx(p10, rel=0.10)
    # real lives are right-skewed; the Weibull law under-states their long tail a little
    assert ttf["p90"] == pytest.approx(p90, rel=0.15)
