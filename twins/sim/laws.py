"""Engineering laws that turn an operating profile into a life acceleration factor.

The twin's health, rate and RUL are measured at the asset's nominal profile; a scenario changes
load, speed and temperature. Each law gives a life ratio (new life / nominal life); the
degradation rate scales with its inverse, the acceleration factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from twins.sim import const
from twins.sim.scenario import AssetInit, Scenario


def bearing_life_ratio(
    load_factor: float,
    speed_factor: float,
    load_exponent: float = const.BEARING_LOAD_EXPONENT,
) -> float:
    """L10h = 10^6/(60 n) (C/P)^p: life in hours scales load^-p and rpm^-1."""
    return load_factor**-load_exponent * speed_factor**-const.BEARING_SPEED_EXPONENT


def insulation_life_ratio(temperature_rise_c: float) -> float:
    """Montsinger rule: insulation life halves for every INSULATION_HALVING_C degrees."""
    return 2.0 ** (-temperature_rise_c / const.INSULATION_HALVING_C)


def operating_temperature_c(
    asset: AssetInit, load_factor: float, ambient_delta_c: float
) -> float:
    """Steady-state temperature: ambient plus a rise that follows I²R losses (load squared)."""
    nominal_rise = asset.nominal_temp_c - asset.ambient_c
    rise = nominal_rise * load_factor**const.TEMPERATURE_RISE_LOAD_EXPONENT
    return asset.ambient_c + ambient_delta_c + rise


@dataclass(frozen=True)
class Stress:
    """How a scenario's profile changes one asset's life."""

    load: float  # absolute, in the unit of nominal_load
    speed_rpm: float
    temperature_c: float
    temperature_change_c: float  # relative to nominal
    bearing_life_ratio: float
    insulation_life_ratio: float
    acceleration: float  # degradation rate multiplier = 1 / combined life ratio


def asset_stress(asset: AssetInit, scenario: Scenario) -> Stress:
    """Combine the laws, weighting by the share of degradation each mechanism causes at nominal.

    The rate is a sum of a mechanical (bearing) and a thermal (insulation) part, each accelerated
    by its own law: at the nominal profile the factor is exactly 1, so the twin's own estimate is
    reproduced.
    """
    bearing = bearing_life_ratio(scenario.load_factor, scenario.speed_factor)
    temperature = operating_temperature_c(
        asset, scenario.load_factor, scenario.ambient_delta_c
    )
    change = temperature - asset.nominal_temp_c
    insulation = insulation_life_ratio(change)
    share = asset.bearing_share
    acceleration = share / bearing + (1.0 - share) / insulation
    return Stress(
        load=asset.nominal_load * scenario.load_factor,
        speed_rpm=asset.nominal_speed_rpm * scenario.speed_factor,
        temperature_c=temperature,
        temperature_change_c=change,
        bearing_life_ratio=bearing,
        insulation_life_ratio=insulation,
        acceleration=acceleration,
    )


@dataclass(frozen=True)
class LifeModel:
    """Life distributions of one asset at its nominal profile, in operating hours."""

    health: float
    current_median: float  # remaining life of the component in place now (lognormal)
    current_sigma: float  # log-spread of that remaining life
    new_median: float  # life of a new component from health 1 (Weibull)
    weibull_shape: float
    age_hours: float  # operating hours since the component in place was new


def life_model(asset: AssetInit) -> LifeModel:
    """Calibrate the asset's lives to the twin: median RUL exact, spread from the 80 % interval."""
    if asset.rul is not None:
        median = asset.rul.median
        if (
            asset.rul.low is not None
            and asset.rul.high is not None
            and asset.rul.high > asset.rul.low
        ):
            sigma = math.log(asset.rul.high / asset.rul.low) / (2.0 * const.Z_P90)
        else:
            sigma = const.DEFAULT_RUL_LOG_SIGMA
        rate = asset.rate if asset.rate is not None else asset.health / median
    else:
        assert asset.rate is not None  # validate_scenario guarantees rate or rul
        rate = asset.rate
        median = asset.health / rate
        sigma = const.DEFAULT_RUL_LOG_SIGMA
    age = (
        asset.age_hours if asset.age_hours is not None else (1.0 - asset.health) / rate
    )
    return LifeModel(
        health=asset.health,
        current_median=median,
        current_sigma=sigma,
        new_median=1.0 / rate,
        weibull_shape=asset.weibull_shape,
        age_hours=age,
    )


def weibull_scale(median: float, shape: float) -> float:
    """Scale eta of a Weibull with the given median: median = eta (ln 2)^(1/shape)."""
    return median / math.log(2.0) ** (1.0 / shape)
