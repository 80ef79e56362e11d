"""From the live twins to the engine's inputs: one AssetInit per asset, and why.

Each simulated asset starts where its TwinState says it is: health, degradation rate (health
per operating hour) and the RUL median with its 80 % interval. RUL in cycles is converted to
operating hours with the hours per cycle the RUL model serves with (RulModel.meta["serving"]
["hours_per_row"] or "hours_per_cycle"), else TwinState.details, else the twin's own calendar
conversion (rul_days_median x Asset.hours_per_day / rul_median), else DEFAULT_HOURS_PER_CYCLE
(1 cycle = 1 operating hour). An asset without a twin state gets
a labelled default (const.DEFAULT_HEALTH of a DEFAULT_LIFE_HOURS life). Every choice is written
to a note that is stored with the run and shown with its result.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from twins import twin_const
from twins.models import Asset, RulModel, TwinState
from twins.scenarios import const
from twins.sim import AssetInit, Policy, RulEstimate, Scenario
from twins.sim import const as sim_const


class CalibrationNote(TypedDict):
    asset_id: str
    name: str
    source: str  # "twin" or "default"
    statement: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Calibrated:
    asset: AssetInit
    note: CalibrationNote


def _positive(value: float | None) -> float | None:
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _stated(meta: Any) -> float | None:
    if not isinstance(meta, dict):
        return None
    serving = meta.get("serving")
    for source in (serving if isinstance(serving, dict) else {}, meta):
        for key in ("hours_per_cycle", "hours_per_row"):
            value = source.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and _positive(value) is not None:
                return float(value)
    return None


def hours_per_cycle(twin: TwinState, models_by_version: dict[str, RulModel], asset: Asset | None = None) -> tuple[float, str]:
    """Operating hours per RUL cycle for this twin, and where the figure comes from: the RUL
    model's serving meta, the twin's details, the twin's own calendar conversion (RUL days x
    hours a day / RUL cycles), else DEFAULT_HOURS_PER_CYCLE."""
    model = models_by_version.get(twin.model_version)
    for where, meta in ((f"RUL model {twin.model_version}", model.meta if model else None), ("twin details", twin.details)):
        value = _stated(meta)
        if value is not None:
            return value, where
    if asset is not None and _positive(twin.rul_days_median) and _positive(twin.rul_median) and _positive(asset.hours_per_day):
        value = twin.rul_days_median * asset.hours_per_day / twin.rul_median
        return value, "the twin's own RUL in days at the asset's hours a day"
    return const.DEFAULT_HOURS_PER_CYCLE, "default assumption (1 cycle = 1 operating hour)"


def _type_key(asset: Asset) -> str:
    """The asset type's identity (no query): spare parts are pooled per type."""
    return f"type-{asset.asset_type_id}" if asset.asset_type_id else ""


def _default_asset(asset: Asset) -> Calibrated:
    rate = 1.0 / const.DEFAULT_LIFE_HOURS
    init = AssetInit(asset_id=asset.key, name=asset.name, health=const.DEFAULT_HEALTH, rate=rate, asset_type=_type_key(asset))
    statement = (
        f"{asset.name}: no twin state yet. DEFAULT ASSUMPTION: half-way (health {const.DEFAULT_HEALTH:g}) "
        f"through a life of {const.DEFAULT_LIFE_HOURS:,.0f} operating hours, i.e. a median remaining life "
        f"of {const.DEFAULT_HEALTH / rate:,.0f} operating hours with the engine's default spread."
    )
    return Calibrated(init, {"asset_id": asset.key, "name": asset.name, "source": "default", "statement": statement,
                             "parameters": {"health": const.DEFAULT_HEALTH, "rate_per_hour": rate}})


def _lives(twin: TwinState, models_by_version: dict[str, RulModel]) -> tuple[float | None, dict[str, float] | None]:
    """What the twin's RUL model knows of lives (operating hours): the median life of a new
    component and the remaining life of one beyond the model's cap (rul_registry.Serving)."""
    model = models_by_version.get(twin.model_version)
    serving = (model.meta or {}).get("serving") if model is not None else None
    for source in (serving if isinstance(serving, dict) else {}, twin.details or {}):
        life, beyond = _positive(source.get("life_hours")), source.get("beyond_cap_hours")
        if life is not None:
            ok = isinstance(beyond, dict) and all(_positive(beyond.get(k)) for k in ("p10", "p50", "p90"))
            return life, beyond if ok else None
    return None, None


def _beyond_cap(twin: TwinState) -> bool:
    cap = _positive((twin.details or {}).get("cap_rul"))
    return cap is not None and twin.rul_median is not None and twin.rul_median >= cap * twin_const.AT_CAP_SHARE


def calibrate_asset(asset: Asset, twin: TwinState | None, models_by_version: dict[str, RulModel] | None = None) -> Calibrated:
    """The engine's view of one asset, from its twin (or the labelled default without one).

    When the twin's RUL model states the lives it was trained on (the demo types), a new
    component lives that median life, the one in place is as old as that life less its RUL, and
    a twin at the model's cap (no wear visible yet) has the remaining life the training lives
    give such a component, not the cap: the cap is a lower bound, not an estimate."""
    if twin is None:
        return _default_asset(asset)
    models_by_version = models_by_version or {}
    life_h, beyond = _lives(twin, models_by_version)
    if life_h is not None and twin.rul_unit == "hours":
        return _calibrate_with_lives(asset, twin, life_h, beyond)
    parts: list[str] = []
    params: dict[str, Any] = {"model_version": twin.model_version, "computed_at": twin.computed_at.isoformat()}
    health = min(1.0, max(const.MIN_HEALTH, float(twin.health)))
    if health != twin.health:
        parts.append(f"health {twin.health:g} clipped to {health:g}")
    params["health"] = health
    rate = _positive(twin.degradation_rate)
    if rate is not None and rate > 1.0:
        parts.append(f"degradation rate {rate:g}/h ignored (above 1 per hour)")
        rate = None
    rul: RulEstimate | None = None
    median = _positive(twin.rul_median)
    if median is not None:
        factor, factor_source = (1.0, "") if twin.rul_unit == "hours" else hours_per_cycle(twin, models_by_version, asset)
        if twin.rul_unit != "hours":
            parts.append(f"RUL in {twin.rul_unit} x {factor:.3g} operating hours per cycle ({factor_source})")
            params["hours_per_cycle"] = factor
        low, high = _positive(twin.rul_low), _positive(twin.rul_high)
        if low is not None and high is not None and low <= median <= high:
            rul = RulEstimate(median=median * factor, low=low * factor, high=high * factor)
        else:
            rul = RulEstimate(median=median * factor)
            if low is not None or high is not None:
                parts.append("80 % interval ignored (it does not bracket the median)")
        params.update(rul_median_h=rul.median, rul_low_h=rul.low, rul_high_h=rul.high)
    if rul is None and rate is None:
        rate = 1.0 / const.DEFAULT_LIFE_HOURS
        parts.append(f"DEFAULT ASSUMPTION: neither RUL nor degradation rate yet, rate 1/{const.DEFAULT_LIFE_HOURS:,.0f} per operating hour")
    params["rate_per_hour"] = rate
    init = AssetInit(asset_id=asset.key, name=asset.name, health=health, rate=rate, rul=rul, asset_type=_type_key(asset))
    if rul is not None:
        source = f"twin RUL median {rul.median:,.0f} operating hours" + (
            f" (80 % interval {rul.low:,.0f}-{rul.high:,.0f})" if rul.low is not None else " (no interval: default spread)"
        )
    else:
        source = f"twin health {health:g} at {rate:g} per operating hour: {health / rate:,.0f} operating hours left"
    statement = f"{asset.name}: {source}, health {health:g}" + (f"; {'; '.join(parts)}" if parts else "") + "."
    return Calibrated(init, {"asset_id": asset.key, "name": asset.name, "source": "twin", "statement": statement, "parameters": params})


def _calibrate_with_lives(asset: Asset, twin: TwinState, life_h: float, beyond: dict[str, float] | None) -> Calibrated:
    params: dict[str, Any] = {"model_version": twin.model_version, "computed_at": twin.computed_at.isoformat(), "new_life_h": life_h}
    health = min(1.0, max(const.MIN_HEALTH, float(twin.health)))
    median, low, high = _positive(twin.rul_median), _positive(twin.rul_low), _positive(twin.rul_high)
    if _beyond_cap(twin) and beyond is not None:
        rul = RulEstimate(median=beyond["p50"], low=beyond["p10"], high=beyond["p90"])
        source = (f"twin RUL beyond the model's horizon of {twin.rul_median:,.0f} operating hours (no wear visible yet); "
                  f"remaining life taken from the lives the model was trained on: median {rul.median:,.0f} h "
                  f"(80 % interval {rul.low:,.0f}-{rul.high:,.0f})")
    elif median is not None:
        bracket = low is not None and high is not None and low <= median <= high
        rul = RulEstimate(median=median, low=low, high=high) if bracket else RulEstimate(median=median)
        source = f"twin RUL median {median:,.0f} operating hours" + (f" (80 % interval {low:,.0f}-{high:,.0f})" if bracket else " (no interval: default spread)")
    else:
        return calibrate_asset(asset, None)
    age = max(0.0, life_h - rul.median)
    params.update(health=health, rul_median_h=rul.median, rul_low_h=rul.low, rul_high_h=rul.high, age_h=age, rate_per_hour=1.0 / life_h)
    init = AssetInit(asset_id=asset.key, name=asset.name, health=health, rate=1.0 / life_h, rul=rul, age_hours=age,
                     new_life_hours=life_h, asset_type=_type_key(asset))
    statement = (f"{asset.name}: {source}, health {health:g}; a new component lives {life_h:,.0f} operating hours at the median "
                 f"(the model's training lives), so this one is about {age:,.0f} h old; its life law is fitted to "
                 f"both that new-part life and the RUL.")
    return Calibrated(init, {"asset_id": asset.key, "name": asset.name, "source": "twin", "statement": statement, "parameters": params})


def calibrate_assets(assets: Sequence[Asset]) -> list[Calibrated]:
    """Calibrate many assets with two queries (twin states, RUL models)."""
    twins = {t.asset_id: t for t in TwinState.objects.filter(asset__in=[a.id for a in assets])}
    versions = {t.model_version for t in twins.values() if t.model_version}
    models = {m.version: m for m in RulModel.objects.filter(version__in=versions)}
    return [calibrate_asset(asset, twins.get(asset.id), models) for asset in assets]


def current_hours_per_day(assets: Sequence[Asset]) -> tuple[float, str]:
    """The fleet's current operating profile (the engine has one schedule per scenario)."""
    hours = [min(sim_const.MAX_HOURS_PER_DAY, a.hours_per_day) for a in assets if a.hours_per_day and a.hours_per_day > 0]
    if not hours:
        return sim_const.MAX_HOURS_PER_DAY, "no operating profile recorded: 24 h a day assumed"
    if len(set(hours)) == 1:
        return hours[0], f"current operating profile: {hours[0]:g} h a day"
    value = float(statistics.median(hours))
    return value, f"the assets run {min(hours):g}-{max(hours):g} h a day; the simulation uses one schedule, the median {value:g} h a day"


def _policy(params: dict[str, Any]) -> Policy:
    raw = params.get("policy") or {}
    return Policy(
        name=raw.get("name", sim_const.POLICY_RUN_TO_FAILURE),
        interval_hours=raw.get("interval_hours"),
        health_threshold=raw.get("health_threshold"),
        lead_time_hours=raw.get("lead_time_hours"),
        inspection_interval_hours=raw.get("inspection_interval_hours"),
        detection_probability=raw.get("detection_probability"),
        off_shift=bool(raw.get("off_shift", False)),
    )


SHARED_FIELDS = ("crew_size", "spare_stock", "spare_lead_time_days", "horizon_days", "replications", "seed",
                 "pm_cost", "cm_cost", "downtime_cost_per_hour")
CHANGED_FIELDS = ("load_factor", "speed_factor", "days_per_week", "ambient_delta_c")


def build_scenarios(name: str, params: dict[str, Any], calibrated: Sequence[Calibrated], profile_hours: float,
                    with_baseline: bool = True) -> dict[str, Scenario]:
    """The planner's what-if and (optionally) the baseline: the same assets, crews, spares,
    costs, horizon, replications and seed, at the current profile and run to failure."""
    assets = [c.asset for c in calibrated]
    shared = {key: params[key] for key in SHARED_FIELDS if key in params}
    hours = params.get("hours_per_day")
    what_if = Scenario(
        assets=assets, name=name, policy=_policy(params),
        hours_per_day=profile_hours if hours is None else hours,
        **{key: params[key] for key in CHANGED_FIELDS if key in params}, **shared,
    )
    out = {const.VARIANT_SCENARIO: what_if}
    if with_baseline:
        out[const.VARIANT_BASELINE] = Scenario(
            assets=assets, name="Baseline (twins as they are, run to failure)", policy=Policy(),
            hours_per_day=profile_hours, **shared,
        )
    return out
