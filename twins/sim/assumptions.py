"""The assumptions behind a result, as statements a planner can read and challenge."""

from __future__ import annotations

from typing import Any, TypedDict

from twins.sim import const
from twins.sim.laws import Stress, asset_stress, life_model
from twins.sim.scenario import AssetInit, Scenario
from twins.sim.schedule import Schedule


class Assumption(TypedDict):
    topic: str
    statement: str
    parameters: dict[str, Any]


def _a(topic: str, statement: str, **parameters: Any) -> Assumption:
    return {"topic": topic, "statement": statement, "parameters": parameters}


def _policy_statement(scenario: Scenario) -> Assumption:
    policy = scenario.policy
    if policy.name == const.POLICY_TIME_BASED:
        text = (
            f"Time-based preventive replacement when a component reaches "
            f"{policy.interval_hours:,.0f} operating hours of age (age counted from the last "
            f"renewal, preventive or corrective; the age of the component in place now is "
            f"(1 - health) / rate unless given)."
        )
    elif policy.name == const.POLICY_CONDITION_BASED:
        text = (
            f"Condition-based replacement when the monitored health falls to "
            f"{policy.health_threshold:g}; health is observed continuously by the twin."
        )
    elif policy.name == const.POLICY_RUL_BASED:
        text = (
            f"RUL-based replacement when the twin's predicted RUL falls below "
            f"{policy.lead_time_hours:,.0f} operating hours; the prediction is the true "
            f"remaining life times a lognormal error (log-sigma "
            f"{const.PROGNOSTIC_LOG_SIGMA})."
        )
    else:
        text = "Run to failure: no preventive replacement; every failure is repaired."
    text += (
        " A preventive job waits for a part and a crew while the asset keeps running; if the"
        " asset fails meanwhile, the job becomes a corrective repair."
    )
    return _a(
        "policy", text, **{k: v for k, v in vars(policy).items() if v is not None}
    )


def scenario_assumptions(scenario: Scenario) -> list[Assumption]:
    schedule = Schedule(scenario.hours_per_day, scenario.days_per_week)
    spares = (
        f"Spare parts: {scenario.spare_stock} in stock, shared by all assets, replenished "
        f"one-for-one (base stock): each part taken is reordered at once and arrives after "
        f"{scenario.spare_lead_time_days:g} days; a repair without a part waits for the next one."
        if scenario.spare_stock is not None
        else "Spare parts never limit a repair (unlimited stock)."
    )
    return [
        _a(
            "degradation",
            "Health falls linearly with operating hours at a rate drawn once per component life "
            "(random-effects degradation model); the asset fails at health 0 and is renewed to "
            "health 1 by a repair or a preventive replacement (as good as new).",
            failure_health=0.0,
            renewed_health=1.0,
        ),
        _a(
            "schedule",
            f"Assets run and wear only in production: {scenario.hours_per_day:g} h a day, "
            f"{scenario.days_per_week} days a week ({100 * schedule.duty:.0f} % of calendar time). "
            f"Downtime counts the production hours lost.",
            hours_per_day=scenario.hours_per_day,
            days_per_week=scenario.days_per_week,
        ),
        _a(
            "calibration",
            "The component in place now has a lognormal remaining life whose median is the twin's "
            "RUL estimate (or health / rate) and whose log-spread is ln(p90/p10) / (2 x 1.2816) "
            f"from the twin's 80 % interval (default {const.DEFAULT_RUL_LOG_SIGMA} without one). "
            "New components have a Weibull life with median 1 / rate and the asset's shape "
            f"(default {const.DEFAULT_WEIBULL_SHAPE}, the ISO 281 bearing dispersion slope).",
            z_p90=const.Z_P90,
            default_log_sigma=const.DEFAULT_RUL_LOG_SIGMA,
            default_weibull_shape=const.DEFAULT_WEIBULL_SHAPE,
        ),
        _a(
            "bearing_life",
            f"Bearing (mechanical) life follows L10h = 10^6 / (60 n) x (C/P)^p with "
            f"p = {const.BEARING_LOAD_EXPONENT:g} (ball bearings): life scales as "
            f"load^-{const.BEARING_LOAD_EXPONENT:g} and rpm^-{const.BEARING_SPEED_EXPONENT:g}. "
            f"Scenario: load x{scenario.load_factor:g}, speed x{scenario.speed_factor:g}.",
            load_exponent=const.BEARING_LOAD_EXPONENT,
            speed_exponent=const.BEARING_SPEED_EXPONENT,
            load_factor=scenario.load_factor,
            speed_factor=scenario.speed_factor,
        ),
        _a(
            "insulation_life",
            f"Insulation (thermal) life halves for every {const.INSULATION_HALVING_C:g} °C of "
            f"temperature rise (Montsinger / Arrhenius rule). Temperature = ambient + rise, the rise "
            f"scaling with load^{const.TEMPERATURE_RISE_LOAD_EXPONENT:g} (I²R losses); scenario "
            f"ambient change {scenario.ambient_delta_c:+g} °C.",
            halving_c=const.INSULATION_HALVING_C,
            rise_load_exponent=const.TEMPERATURE_RISE_LOAD_EXPONENT,
            ambient_delta_c=scenario.ambient_delta_c,
        ),
        _a(
            "combined_stress",
            "Each asset's degradation rate is the sum of a mechanical and a thermal part, split by "
            "its bearing_share at the nominal profile; each part is accelerated by its own law, "
            "so the nominal profile reproduces the twin's estimate exactly.",
        ),
        _policy_statement(scenario),
        _a(
            "crews",
            f"{scenario.crew_size} repair crew(s), available around the clock; failed assets are "
            f"served before preventive jobs, then first come, first served. Job durations are "
            f"lognormal around each asset's nominal hours (log-sigma {const.REPAIR_TIME_LOG_SIGMA}).",
            crew_size=scenario.crew_size,
            job_log_sigma=const.REPAIR_TIME_LOG_SIGMA,
        ),
        _a(
            "spares",
            spares,
            spare_stock=scenario.spare_stock,
            spare_lead_time_days=scenario.spare_lead_time_days,
        ),
        _a(
            "costs",
            f"Preventive job {scenario.pm_cost:,.0f}, corrective repair {scenario.cm_cost:,.0f}, "
            f"downtime {scenario.downtime_cost_per_hour:,.0f} per lost production hour "
            f"(per-asset values override these).",
            pm_cost=scenario.pm_cost,
            cm_cost=scenario.cm_cost,
            downtime_cost_per_hour=scenario.downtime_cost_per_hour,
        ),
        _a(
            "recommendation",
            "Recommended replacement: the age t minimising the long-run cost per operating hour "
            "(Cp P(T>t) + Cf P(T<=t)) / E[min(T,t)] over the simulated remaining lives T of the "
            "component in place (age-replacement model), with Cp and Cf including the downtime "
            "cost of a preventive job and of a repair; none if running to failure is cheaper.",
        ),
        _a(
            "monte_carlo",
            f"{scenario.replications} replications over {scenario.horizon_days} days; replication i "
            f"draws from its own generator seeded with (seed={scenario.seed}, i), so results do not "
            f"depend on how replications are split across workers. Quantiles p10/p50/p90.",
            replications=scenario.replications,
            horizon_days=scenario.horizon_days,
            seed=scenario.seed,
        ),
    ]


def asset_assumptions(
    asset: AssetInit, stress: Stress | None = None, scenario: Scenario | None = None
) -> list[Assumption]:
    if stress is None:
        assert scenario is not None
        stress = asset_stress(asset, scenario)
    life = life_model(asset)
    label = asset.name or asset.asset_id
    source = (
        f"twin RUL median {asset.rul.median:,.0f} h"
        + (
            f", 80 % interval {asset.rul.low:,.0f}-{asset.rul.high:,.0f} h"
            if asset.rul.low is not None
            else ""
        )
        if asset.rul is not None
        else f"health {asset.health:g} / rate {asset.rate:g} per h"
    )
    return [
        _a(
            "calibration",
            f"{label}: remaining life of the component in place at the nominal profile: median "
            f"{life.current_median:,.0f} operating hours ({source}), log-sigma "
            f"{life.current_sigma:.3f}; new components: median {life.new_median:,.0f} h, "
            f"Weibull shape {life.weibull_shape:g}.",
            median_h=life.current_median,
            log_sigma=life.current_sigma,
            new_median_h=life.new_median,
            weibull_shape=life.weibull_shape,
            age_h=life.age_hours,
        ),
        _a(
            "stress",
            f"{label}: load {stress.load:g} (x{stress.load / asset.nominal_load:g}), speed "
            f"{stress.speed_rpm:g} rpm -> bearing life x{stress.bearing_life_ratio:.3f}; "
            f"temperature {stress.temperature_c:.1f} °C ({stress.temperature_change_c:+.1f} °C) -> "
            f"insulation life x{stress.insulation_life_ratio:.3f}; bearing share "
            f"{asset.bearing_share:g}: degradation rate x{stress.acceleration:.3f}.",
            bearing_life_ratio=stress.bearing_life_ratio,
            insulation_life_ratio=stress.insulation_life_ratio,
            temperature_c=stress.temperature_c,
            acceleration=stress.acceleration,
            bearing_share=asset.bearing_share,
        ),
    ]
