"""The engineering laws and the production calendar, checked against their textbook forms."""

from __future__ import annotations

import numpy as np
import pytest

from tests.sim.factories import scenario, twin_asset
from twins.sim.laws import (
    asset_stress,
    bearing_life_ratio,
    insulation_life_ratio,
    life_model,
    operating_temperature_c,
)
from twins.sim.schedule import Schedule


def test_it_halves_insulation_life_for_every_ten_degrees():
    assert insulation_life_ratio(10.0) == pytest.approx(0.5)
    assert insulation_life_ratio(20.0) == pytest.approx(0.25)
    assert insulation_life_ratio(-10.0) == pytest.approx(2.0)


def test_it_scales_bearing_life_with_load_cubed_and_inverse_speed():
    assert bearing_life_ratio(2.0, 1.0) == pytest.approx(1 / 8)
    assert bearing_life_ratio(1.0, 2.0) == pytest.approx(1 / 2)
    assert bearing_life_ratio(1.2, 1.5) == pytest.approx(1.2**-3 / 1.5)


def test_it_raises_temperature_with_the_square_of_load():
    motor = twin_asset(nominal_temp_c=75.0, ambient_c=25.0)
    assert operating_temperature_c(motor, 1.0, 0.0) == pytest.approx(75.0)
    assert operating_temperature_c(motor, 1.2, 5.0) == pytest.approx(
        25.0 + 5.0 + 50.0 * 1.44
    )


def test_it_reproduces_the_twin_at_the_nominal_profile():
    stress = asset_stress(twin_asset(), scenario())
    assert stress.acceleration == pytest.approx(1.0)


def test_it_weights_mechanisms_by_their_share_of_degradation():
    mechanical = asset_stress(twin_asset(bearing_share=1.0), scenario(load_factor=1.1))
    thermal = asset_stress(
        twin_asset(bearing_share=0.0), scenario(ambient_delta_c=10.0)
    )
    assert mechanical.acceleration == pytest.approx(1.1**3)
    assert thermal.acceleration == pytest.approx(2.0)


def test_it_derives_the_spread_from_the_twin_interval():
    life = life_model(twin_asset())  # 1,400 / 2,000 / 2,900 h
    assert life.current_median == 2000.0
    assert life.current_sigma == pytest.approx(
        np.log(2900 / 1400) / (2 * 1.2815515655446004)
    )
    assert life.new_median == pytest.approx(2000.0 / 0.6)


@pytest.mark.parametrize(("hours", "days"), [(24.0, 7), (16.0, 5), (8.0, 6), (24.0, 5)])
def test_it_maps_operating_hours_to_calendar_and_back(hours, days):
    schedule = Schedule(hours, days)
    op = np.random.default_rng(1).uniform(0, 20_000, 500)
    calendar = schedule.to_calendar_array(op)
    assert np.allclose(schedule.to_operating_array(calendar), op)
    assert np.all(np.diff(schedule.to_calendar_array(np.sort(op))) >= 0)
    assert [schedule.to_calendar(x) for x in op[:20]] == pytest.approx(
        list(calendar[:20])
    )
    assert schedule.production_hours(0.0, 168.0 * 4) == pytest.approx(4 * hours * days)


def test_it_counts_only_production_hours_as_lost():
    two_shifts = Schedule(16.0, 5)
    assert two_shifts.production_hours(15.0, 30.0) == pytest.approx(
        1.0 + 6.0
    )  # 15-16h, 24-30h
    assert two_shifts.production_hours(5 * 24.0, 7 * 24.0) == 0.0  # the weekend
