"""The assumptions behind a result, as statements a planner can read and challenge."""

from __future__ import annotations

from typing import Any, TypedDict

from twins.sim import const
from twins.sim.laws import Stress, asset_stress
from twins.sim.lifelaw import LifeLaw, fit_life_law
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
        if policy.inspection_interval_hours:
            seen = (
                f"health is inspected every {policy.inspection_interval_hours:,.0f} operating "
                f"hours and an inspection sees a crossed threshold with probability "
                f"{1.0 if policy.detection_probability is None else policy.detection_probability:g}"
            )
        else:
            seen = "health is monitored continuously by the twin"
        text = (
            f"Condition-based replacement when health falls to "
            f"{policy.health_threshold:g}; {seen}."
        )
    elif policy.name == const.POLICY_RUL_BASED:
        text = (
            f"RUL-based replacement when the twin's predicted RUL falls below "
            f"{policy.lead_time_hours:,.0f} operating hours; the prediction is the true "
            f"remaining life r times a lognormal error of log-sigma "
            f"{const.PROGNOSTIC_LOG_SIGMA} x sqrt(r / mean life): it narrows as the part "
            f"nears failure. A part just installed is never replaced on its forecast."
        )
    else:
        text = "Run to failure: no preventive replacement; every failure is repaired."
    if policy.off_shift and policy.name != const.POLICY_RUN_TO_FAILURE:
        text += (
            " Preventive jobs start at the end of the shift in which they fall due (the asset"
            " runs until then and may fail first)."
        )
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
        f"Spare parts: {scenario.spare_stock} in stock per asset type, shared by the assets of "
        f"that type, replenished "
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
            f"Downtime counts the production hours lost; waits for crews and parts are calendar "
            f"hours; lives and ages are operating hours.",
            hours_per_day=scenario.hours_per_day,
            days_per_week=scenario.days_per_week,
        ),
        _a(
            "calibration",
            "Each asset has ONE Weibull life law, used for the part in place and every "
            "replacement, and by the recommendation: the part in place is as old as the twin "
            "says (or (1 - health) / rate) and its remaining life is that law given it has "
            "survived so far; its median is the twin's RUL exactly. The shape comes from the "
            "new-part life when it is known, else from the twin's 80 % interval, else the "
            f"asset's shape (default {const.DEFAULT_WEIBULL_SHAPE}, the ISO 281 bearing "
            "dispersion slope). Where a Weibull cannot match the twin's interval exactly, the "
            "law's own p10/p90 are stated per asset.",
            default_weibull_shape=const.DEFAULT_WEIBULL_SHAPE,
            shape_range=list(const.LIFE_FIT_SHAPE_RANGE),
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
            "(Cp P(T>t) + Cf P(T<=t)) / E[min(T,t)] for the asset's own life law T "
            "(age-replacement model); the part in place is replaced when it reaches t. Cp and "
            "Cf are what the simulation charges per event: job cost plus the downtime cost of "
            "the production hours a failure (waits for crews and parts included) or a "
            "preventive job lost in this scenario's simulation. The cost rate and saving quoted "
            f"are the engine's own: the recommended ages and run to failure simulated on the "
            f"first {min(scenario.replications, const.CHECK_REPLICATIONS)} replications with "
            "the same seeds, with 95 % confidence intervals.",
            check_replications=min(scenario.replications, const.CHECK_REPLICATIONS),
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
    asset: AssetInit,
    stress: Stress | None = None,
    scenario: Scenario | None = None,
    law: LifeLaw | None = None,
) -> list[Assumption]:
    if stress is None:
        assert scenario is not None
        stress = asset_stress(asset, scenario)
    nominal = fit_life_law(asset)
    law = law or nominal.at_stress(stress.acceleration)
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
    how = {
        "new_life": f"shape solved so a new part's median is the known "
        f"{asset.new_life_hours or 0:,.0f} h",
        "interval": "shape fitted to the twin's 80 % interval",
        "asset_shape": f"the asset's shape {asset.weibull_shape:g}",
    }[nominal.source]
    r10, r50, r90 = (float(v) for v in nominal.residual_quantile([0.1, 0.5, 0.9]))
    n10, n50, n90 = (float(v) for v in nominal.new_quantile([0.1, 0.5, 0.9]))
    return [
        _a(
            "calibration",
            f"{label}: one Weibull life law (shape {nominal.shape:.2f}, scale "
            f"{nominal.scale:,.0f} operating h; {how}) for the part in place, "
            f"{nominal.age:,.0f} operating h old ({source}), and every replacement. Remaining "
            f"life now p10/p50/p90 {r10:,.0f}/{r50:,.0f}/{r90:,.0f} operating h; a new part "
            f"{n10:,.0f}/{n50:,.0f}/{n90:,.0f} operating h (at the nominal profile).",
            weibull_shape=nominal.shape,
            weibull_scale_h=nominal.scale,
            age_h=nominal.age,
            fit=nominal.source,
            residual_p10_p50_p90_h=[r10, r50, r90],
            new_p10_p50_p90_h=[n10, n50, n90],
            stressed_scale_h=law.scale,
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
