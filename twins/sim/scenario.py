"""What-if scenario inputs: plain dataclasses, their validation and their JSON form.

A scenario crosses process boundaries (form -> Celery -> worker) as a dict: `scenario_to_dict`
and `scenario_from_dict` are exact inverses, and `scenario_from_dict` validates, so a worker
never simulates something the form would have refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from twins.sim import const


class ScenarioError(ValueError):
    """Invalid scenario; `errors` maps a field path (e.g. "assets[2].health") to a message."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        listing = "; ".join(
            f"{name}: {message}" for name, message in self.errors.items()
        )
        super().__init__(f"invalid scenario: {listing}")


@dataclass(frozen=True)
class RulEstimate:
    """The twin's remaining useful life estimate, in operating hours at the current profile."""

    median: float
    low: float | None = None  # 10th percentile (lower end of the 80 % interval)
    high: float | None = None  # 90th percentile


@dataclass(frozen=True)
class AssetInit:
    """One asset as its live twin sees it now: health, degradation and operating profile."""

    asset_id: str
    name: str = ""
    health: float = 1.0  # 0 (failed) .. 1 (as new)
    rate: float | None = (
        None  # health units lost per operating hour at the nominal profile
    )
    rul: RulEstimate | None = (
        None  # takes precedence over `rate` for the current component
    )
    nominal_load: float = 1.0  # any unit (kW, N, %); only ratios matter
    nominal_speed_rpm: float = 1500.0
    nominal_temp_c: float = 70.0  # operating temperature at nominal load and ambient
    ambient_c: float = const.DEFAULT_AMBIENT_C
    bearing_share: float = (
        0.5  # share of degradation from mechanical wear; rest is thermal
    )
    weibull_shape: float = (
        const.DEFAULT_WEIBULL_SHAPE
    )  # life dispersion of new components
    repair_hours: float = 8.0  # corrective repair, once crew and part are there
    pm_hours: float = 4.0  # preventive replacement job
    age_hours: float | None = (
        None  # operating hours since last renewal; None: (1-health)/rate
    )
    new_life_hours: float | None = (
        None  # median life of a new part when known (e.g. the lives a RUL model learnt)
    )
    asset_type: str = ""  # spare parts are pooled per asset type
    pm_interval_hours: float | None = (
        None  # time_based: this asset's own replacement age (overrides the policy's)
    )
    pm_cost: float | None = None  # overrides Scenario.pm_cost for this asset
    cm_cost: float | None = None  # overrides Scenario.cm_cost
    downtime_cost_per_hour: float | None = (
        None  # overrides Scenario.downtime_cost_per_hour
    )


@dataclass(frozen=True)
class Policy:
    """Maintenance policy. Hours are operating hours."""

    name: str = const.POLICY_RUN_TO_FAILURE
    interval_hours: float | None = None  # time_based: replace at this age
    health_threshold: float | None = (
        None  # condition_based: replace when health falls to it
    )
    lead_time_hours: float | None = (
        None  # rul_based: replace when predicted RUL falls below it
    )
    inspection_interval_hours: float | None = (
        None  # condition_based: operating hours between inspections; None: continuous
    )
    detection_probability: float | None = (
        None  # condition_based: chance an inspection sees a crossed threshold; None: 1
    )
    off_shift: bool = False  # preventive jobs wait for the end of the shift they fall in


@dataclass(frozen=True)
class Scenario:
    assets: list[AssetInit]
    name: str = "scenario"
    policy: Policy = field(default_factory=Policy)
    load_factor: float = 1.0
    speed_factor: float = 1.0
    hours_per_day: float = 24.0
    days_per_week: int = 7
    ambient_delta_c: float = 0.0
    crew_size: int = 2
    spare_stock: int | None = 2  # None: spares never limit repairs
    spare_lead_time_days: float = 14.0
    horizon_days: int = 365
    replications: int = 1000
    seed: int = 0
    pm_cost: float = 1_000.0
    cm_cost: float = 5_000.0
    downtime_cost_per_hour: float = 500.0


def _finite(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


class _Checker:
    """Collects every problem so the planner sees them all at once, not one per submit."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def number(
        self,
        path: str,
        value: Any,
        low: float,
        high: float,
        *,
        low_open: bool = False,
        optional: bool = False,
    ) -> bool:
        if value is None and optional:
            return True
        if not _finite(value):
            self.errors[path] = "must be a number"
            return False
        if value < low or (low_open and value == low) or value > high:
            bracket = "(" if low_open else "["
            self.errors[path] = f"must be in {bracket}{low:g}, {high:g}]"
            return False
        return True

    def integer(
        self, path: str, value: Any, low: int, high: int, *, optional: bool = False
    ) -> bool:
        if value is None and optional:
            return True
        if not isinstance(value, int) or isinstance(value, bool):
            self.errors[path] = "must be an integer"
            return False
        if not low <= value <= high:
            self.errors[path] = f"must be between {low} and {high}"
            return False
        return True


def _check_asset(check: _Checker, path: str, asset: Any, seen: set[str]) -> None:
    if not isinstance(asset, AssetInit):
        check.errors[path] = "must be an AssetInit"
        return
    if not isinstance(asset.asset_id, str) or not asset.asset_id.strip():
        check.errors[f"{path}.asset_id"] = "must be a non-empty string"
    elif asset.asset_id in seen:
        check.errors[f"{path}.asset_id"] = f"duplicate asset id {asset.asset_id!r}"
    else:
        seen.add(asset.asset_id)
    check.number(f"{path}.health", asset.health, 0.0, 1.0, low_open=True)
    if asset.rate is None and asset.rul is None:
        check.errors[f"{path}.rate"] = "give a degradation rate or an RUL estimate"
    check.number(f"{path}.rate", asset.rate, 0.0, 1.0, low_open=True, optional=True)
    if asset.rul is not None:
        _check_rul(check, f"{path}.rul", asset.rul)
    check.number(f"{path}.nominal_load", asset.nominal_load, 0.0, 1e12, low_open=True)
    check.number(
        f"{path}.nominal_speed_rpm", asset.nominal_speed_rpm, 0.0, 1e6, low_open=True
    )
    check.number(f"{path}.nominal_temp_c", asset.nominal_temp_c, -50.0, 300.0)
    ambient_ok = check.number(f"{path}.ambient_c", asset.ambient_c, -50.0, 100.0)
    if (
        ambient_ok
        and _finite(asset.nominal_temp_c)
        and asset.ambient_c > asset.nominal_temp_c
    ):
        check.errors[f"{path}.ambient_c"] = "must not exceed nominal_temp_c"
    check.number(f"{path}.bearing_share", asset.bearing_share, 0.0, 1.0)
    check.number(
        f"{path}.weibull_shape", asset.weibull_shape, *const.WEIBULL_SHAPE_RANGE
    )
    check.number(
        f"{path}.repair_hours",
        asset.repair_hours,
        0.0,
        const.MAX_JOB_HOURS,
        low_open=True,
    )
    check.number(
        f"{path}.pm_hours", asset.pm_hours, 0.0, const.MAX_JOB_HOURS, low_open=True
    )
    check.number(
        f"{path}.age_hours", asset.age_hours, 0.0, const.MAX_LIFE_HOURS, optional=True
    )
    check.number(
        f"{path}.new_life_hours",
        asset.new_life_hours,
        0.0,
        const.MAX_LIFE_HOURS,
        low_open=True,
        optional=True,
    )
    check.number(
        f"{path}.pm_interval_hours",
        asset.pm_interval_hours,
        0.0,
        const.MAX_LIFE_HOURS,
        low_open=True,
        optional=True,
    )
    if not isinstance(asset.asset_type, str) or len(asset.asset_type) > 100:
        check.errors[f"{path}.asset_type"] = "must be a string of at most 100 characters"
    for name in ("pm_cost", "cm_cost", "downtime_cost_per_hour"):
        check.number(
            f"{path}.{name}", getattr(asset, name), 0.0, const.MAX_COST, optional=True
        )


def _check_rul(check: _Checker, path: str, rul: Any) -> None:
    if not isinstance(rul, RulEstimate):
        check.errors[path] = "must be an RulEstimate(median, low, high)"
        return
    if not check.number(
        f"{path}.median", rul.median, 0.0, const.MAX_LIFE_HOURS, low_open=True
    ):
        return
    if (rul.low is None) != (rul.high is None):
        check.errors[path] = "give both low and high of the 80 % interval, or neither"
        return
    if rul.low is None:
        return
    low_ok = check.number(
        f"{path}.low", rul.low, 0.0, const.MAX_LIFE_HOURS, low_open=True
    )
    if low_ok and rul.low > rul.median:
        check.errors[f"{path}.low"] = "must not exceed the median"
    high_ok = check.number(
        f"{path}.high", rul.high, 0.0, const.MAX_LIFE_HOURS, low_open=True
    )
    if high_ok and rul.high < rul.median:
        check.errors[f"{path}.high"] = "must not be below the median"


def _check_policy(check: _Checker, policy: Any) -> None:
    if not isinstance(policy, Policy):
        check.errors["policy"] = "must be a Policy"
        return
    if policy.name not in const.POLICIES:
        check.errors["policy.name"] = f"must be one of {', '.join(const.POLICIES)}"
        return
    needed = {
        const.POLICY_TIME_BASED: "interval_hours",
        const.POLICY_CONDITION_BASED: "health_threshold",
        const.POLICY_RUL_BASED: "lead_time_hours",
    }.get(policy.name)
    if needed and getattr(policy, needed) is None:
        check.errors[f"policy.{needed}"] = f"required by the {policy.name} policy"
        return
    check.number(
        "policy.interval_hours",
        policy.interval_hours,
        0.0,
        const.MAX_LIFE_HOURS,
        low_open=True,
        optional=True,
    )
    check.number(
        "policy.health_threshold",
        policy.health_threshold,
        0.0,
        1.0,
        low_open=True,
        optional=True,
    )
    if _finite(policy.health_threshold) and policy.health_threshold >= 1.0:
        check.errors["policy.health_threshold"] = "must be below 1"
    check.number(
        "policy.inspection_interval_hours",
        policy.inspection_interval_hours,
        0.0,
        const.MAX_LIFE_HOURS,
        low_open=True,
        optional=True,
    )
    check.number(
        "policy.detection_probability",
        policy.detection_probability,
        0.0,
        1.0,
        low_open=True,
        optional=True,
    )
    if not isinstance(policy.off_shift, bool):
        check.errors["policy.off_shift"] = "must be true or false"
    check.number(
        "policy.lead_time_hours",
        policy.lead_time_hours,
        0.0,
        const.MAX_LIFE_HOURS,
        low_open=True,
        optional=True,
    )


def validate_scenario(scenario: Scenario) -> None:
    """Raise ScenarioError listing every invalid or out-of-bounds field."""
    check = _Checker()
    if not isinstance(scenario.name, str) or len(scenario.name) > 200:
        check.errors["name"] = "must be a string of at most 200 characters"
    assets = scenario.assets
    if not isinstance(assets, (list, tuple)) or not assets:
        check.errors["assets"] = "give at least one asset"
    elif len(assets) > const.MAX_ASSETS:
        check.errors["assets"] = f"at most {const.MAX_ASSETS} assets per scenario"
    else:
        seen: set[str] = set()
        for index, asset in enumerate(assets):
            _check_asset(check, f"assets[{index}]", asset, seen)
    _check_policy(check, scenario.policy)
    check.number("load_factor", scenario.load_factor, *const.LOAD_FACTOR_RANGE)
    check.number("speed_factor", scenario.speed_factor, *const.SPEED_FACTOR_RANGE)
    check.number(
        "hours_per_day",
        scenario.hours_per_day,
        0.0,
        const.MAX_HOURS_PER_DAY,
        low_open=True,
    )
    check.integer("days_per_week", scenario.days_per_week, 1, 7)
    check.number(
        "ambient_delta_c", scenario.ambient_delta_c, *const.AMBIENT_DELTA_RANGE_C
    )
    check.integer("crew_size", scenario.crew_size, const.MIN_CREW, const.MAX_CREW)
    check.integer(
        "spare_stock", scenario.spare_stock, 0, const.MAX_SPARE_STOCK, optional=True
    )
    check.number(
        "spare_lead_time_days",
        scenario.spare_lead_time_days,
        0.0,
        const.MAX_SPARE_LEAD_DAYS,
    )
    check.integer("horizon_days", scenario.horizon_days, 1, const.MAX_HORIZON_DAYS)
    check.integer("replications", scenario.replications, 1, const.MAX_REPLICATIONS)
    check.integer("seed", scenario.seed, 0, const.MAX_SEED)
    for name in ("pm_cost", "cm_cost", "downtime_cost_per_hour"):
        check.number(name, getattr(scenario, name), 0.0, const.MAX_COST)
    if not check.errors:
        asset_years = (
            len(assets) * scenario.replications * scenario.horizon_days / 365.0
        )
        if asset_years > const.MAX_ASSET_YEARS:
            check.errors["replications"] = (
                f"assets x replications x years = {asset_years:,.0f} exceeds the limit of "
                f"{const.MAX_ASSET_YEARS:,} asset-years; lower replications or the horizon"
            )
    if check.errors:
        raise ScenarioError(check.errors)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    """dataclasses.asdict without its deep copies (the values are immutable numbers, strings
    and None): the same dict, several times faster for a site of hundreds of assets."""
    if is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES.get(type(value))
        if names is None:
            names = _FIELD_NAMES[type(value)] = tuple(f.name for f in fields(value))
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    """JSON-ready form of a scenario (what a Celery task receives)."""
    return _plain(scenario)


def _build(cls: type, data: Any, path: str, errors: dict[str, str]) -> Any:
    if not isinstance(data, dict):
        errors[path or cls.__name__] = "must be an object"
        return None
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    for name in unknown:
        errors[f"{path}.{name}" if path else name] = "unknown field"
    try:
        return cls(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:  # a missing required field: name it for the form
        errors[path or cls.__name__] = f"incomplete: {exc}"
        return None


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    """Build and validate a Scenario from its dict form; raises ScenarioError."""
    errors: dict[str, str] = {}
    if not isinstance(data, dict):
        raise ScenarioError({"scenario": "must be an object"})
    payload = dict(data)
    raw_assets = payload.get("assets")
    assets: list[Any] = []
    if isinstance(raw_assets, list):
        for index, raw in enumerate(raw_assets):
            path = f"assets[{index}]"
            if isinstance(raw, dict) and raw.get("rul") is not None:
                raw = dict(raw)
                raw["rul"] = _build(RulEstimate, raw["rul"], f"{path}.rul", errors)
            assets.append(_build(AssetInit, raw, path, errors))
    elif raw_assets is not None:
        errors["assets"] = "must be a list"
    payload["assets"] = assets
    if "policy" in payload:
        payload["policy"] = _build(Policy, payload["policy"], "policy", errors)
    scenario = _build(Scenario, payload, "", errors)
    if errors:
        raise ScenarioError(errors)
    validate_scenario(scenario)
    return scenario
