"""Merge chunks into a scenario result: distributions, risk curves, costs, recommendations.

Statistics are computed once, on the replications concatenated in order, never combined from
per-chunk statistics: that is what makes the result independent of the split.

ScenarioResult (JSON-ready dict). Summary = {"mean", "p10", "p50", "p90"}; a censored quantile
is None when it lies beyond the horizon.
    version, name, scenario_key, scenario (scenario_to_dict), policy, replications,
    horizon_days, production_hours (per asset over the horizon), day_grid [int days],
    assumptions [{"topic", "statement", "parameters"}],
    fleet: expected_failures, expected_preventive, crew_utilisation (0..1),
           downtime_hours, wait_hours, availability, maintenance_cost, downtime_cost,
           total_cost (Summaries of per-replication fleet totals; availability is the
           fleet mean), expected_failed_assets [per day_grid], any_failure_probability
           [per day_grid]
    assets[]: asset_id, name, stress {load, speed_rpm, temperature_c, temperature_change_c,
           bearing_life_ratio, insulation_life_ratio, acceleration},
           rul_operating_hours, rul_days (Summary, remaining life of the component in
           place, uncensored), rul_histogram and ttf_histogram {edges [days], counts,
           above}, ttf_days and ttf_operating_hours {p10, p50, p90} (first failure, censored),
           failure_probability [per day_grid], failure_probability_horizon,
           expected_failures, expected_preventive, downtime_hours, wait_hours, availability,
           maintenance_cost, downtime_cost, total_cost (Summaries), recommendation
           (recommend.py on the asset's life law and the simulation's event costs, with
           "simulated": the engine's check of it, check.py), assumptions [per-asset
           calibration and stress statements]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np

from twins.sim import const
from twins.sim.assumptions import asset_assumptions, scenario_assumptions
from twins.sim.check import (
    CHECK_FIELDS,
    RUN_TO_FAILURE,
    CheckChunk,
    CheckError,
    CheckPlan,
    apply_check,
    plan_check,
    run_check_chunk,
)
from twins.sim.costs import event_costs
from twins.sim.laws import asset_stress
from twins.sim.lifelaw import LifeLaw, fit_life_law
from twins.sim.recommend import recommend_replacement
from twins.sim.runner import CHUNK_VERSION, FIELDS, ChunkResult, EncodedArray, decode_array, encode_array
from twins.sim.scenario import Scenario, scenario_from_dict, scenario_to_dict
from twins.sim.schedule import Schedule

RESULT_VERSION = 2
ScenarioResult = dict[str, Any]  # JSON-ready; shape in the module docstring


class MergeError(ValueError):
    """Chunks that do not add up to one scenario's replications."""


def _round(value: float, digits: int) -> float | None:
    return None if not math.isfinite(value) else round(float(value), digits)


def summarise(values: np.ndarray, digits: int = 2) -> dict[str, float | None]:
    """Mean and p10/p50/p90 of a sample (linear interpolation between order statistics)."""
    q = np.quantile(values, const.QUANTILES)
    return {
        "mean": _round(float(np.mean(values)), digits),
        "p10": _round(q[0], digits),
        "p50": _round(q[1], digits),
        "p90": _round(q[2], digits),
    }


def summarise_columns(values: np.ndarray, digits: int = 2) -> list[dict[str, float | None]]:
    """summarise() of each column of a (replications x assets) array, in one pass."""
    q = np.quantile(values, const.QUANTILES, axis=0)
    means = values.mean(axis=0)
    return [
        {
            "mean": _round(float(means[k]), digits),
            "p10": _round(q[0, k], digits),
            "p50": _round(q[1, k], digits),
            "p90": _round(q[2, k], digits),
        }
        for k in range(values.shape[1])
    ]


def censored_quantiles(values: np.ndarray, digits: int = 2) -> dict[str, float | None]:
    """Quantiles of a sample with inf for 'not within the horizon'; None where not reached."""
    ordered = np.sort(values)
    n = ordered.size
    out: dict[str, float | None] = {}
    for q, name in zip(const.QUANTILES, ("p10", "p50", "p90")):
        # inverted CDF: the smallest value with at least q of the sample at or below it
        # (the epsilon keeps 0.1 * 300 from rounding up to the 31st value)
        out[name] = _round(ordered[max(0, math.ceil(q * n - 1e-9) - 1)], digits)
    return out


def histogram(values: np.ndarray, upper: float, digits: int = 1) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    upper = upper if upper > 0 else 1.0
    counts, edges = np.histogram(finite, bins=const.HISTOGRAM_BINS, range=(0.0, upper))
    return {
        "edges": [round(float(e), digits) for e in edges],
        "counts": counts.tolist(),
        "above": int(values.size - counts.sum()),
    }


def day_grid(horizon_days: int) -> list[int]:
    step = max(1, math.ceil(horizon_days / const.MAX_CURVE_POINTS))
    grid = list(range(0, horizon_days + 1, step))
    if grid[-1] != horizon_days:
        grid.append(horizon_days)
    return grid


def _gather(
    chunks: Sequence[ChunkResult], names: Sequence[str] = tuple(FIELDS)
) -> tuple[Scenario, dict[str, np.ndarray]]:
    if not chunks:
        raise MergeError("no chunks to merge")
    ordered = sorted(chunks, key=lambda chunk: chunk["start"])
    keys = {chunk.get("scenario_key") for chunk in ordered}
    if len(keys) != 1:
        raise MergeError("chunks come from different scenarios")
    if any(chunk.get("version") != CHUNK_VERSION for chunk in ordered):
        raise MergeError(f"chunk version must be {CHUNK_VERSION}")
    if ordered[0]["start"] != 0:
        raise MergeError(f"replications 0..{ordered[0]['start'] - 1} are missing")
    if "scenario" not in ordered[0]:
        raise MergeError("the chunk that starts at replication 0 carries no scenario")
    scenario = scenario_from_dict(ordered[0]["scenario"])
    expected = 0
    for chunk in ordered:
        if chunk["start"] != expected:
            raise MergeError(
                f"replications {expected}..{chunk['start'] - 1} are missing or "
                f"overlap (chunk starts at {chunk['start']})"
            )
        expected = chunk["stop"]
    if expected != scenario.replications:
        raise MergeError(
            f"chunks cover {expected} of {scenario.replications} replications"
        )
    arrays = {
        name: np.concatenate(
            [decode_array(chunk["arrays"][name]) for chunk in ordered]
        ).astype(np.float64)
        for name in names
    }
    return scenario, arrays


def _asset_costs(scenario: Scenario) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def pick(name: str) -> np.ndarray:
        default = getattr(scenario, name)
        values = [getattr(a, name) for a in scenario.assets]
        return np.array([default if v is None else v for v in values], dtype=float)

    return pick("pm_cost"), pick("cm_cost"), pick("downtime_cost_per_hour")


# what _recommend reads of the replications
_RECOMMENDATION_FIELDS = ("failures", "preventive", "downtime_h", "failure_downtime_h")


def _recommend(
    scenario: Scenario, arrays: dict[str, np.ndarray]
) -> tuple[list[LifeLaw], list[dict[str, Any]]]:
    """Each asset's life law at the scenario's stress and its recommendation (recommend.py),
    priced with the event costs the simulation charged (costs.py)."""
    schedule = Schedule(scenario.hours_per_day, scenario.days_per_week)
    horizon_h = scenario.horizon_days * 24.0
    failures = arrays["failures"].sum(axis=0)
    preventive = arrays["preventive"].sum(axis=0)
    failure_lost = arrays["failure_downtime_h"].sum(axis=0)
    preventive_lost = (arrays["downtime_h"] - arrays["failure_downtime_h"]).sum(axis=0)
    laws, recommendations = [], []
    for k, asset in enumerate(scenario.assets):
        law = fit_life_law(asset).at_stress(asset_stress(asset, scenario).acceleration)
        costs = event_costs(
            scenario,
            asset,
            failures=float(failures[k]),
            failure_lost_h=float(failure_lost[k]),
            preventive=float(preventive[k]),
            preventive_lost_h=float(preventive_lost[k]),
        )
        recommendation = recommend_replacement(
            law,
            preventive_cost=costs.preventive,
            failure_cost=costs.failure,
            schedule=schedule,
            horizon_h=horizon_h,
        )
        recommendation["production_hours_lost_per_failure"] = round(costs.failure_lost_h, 2)
        recommendation["production_hours_lost_per_preventive"] = round(
            costs.preventive_lost_h, 2
        )
        laws.append(law)
        recommendations.append(recommendation)
    return laws, recommendations


def check_plan(chunks: Sequence[ChunkResult]) -> CheckPlan:
    """What the recommendation check of these chunks' merge simulates (check.py): the
    second phase of a chunked run, whose check chunks merge() then takes."""
    scenario, arrays = _gather(chunks, _RECOMMENDATION_FIELDS)
    return plan_check(scenario, _recommend(scenario, arrays)[1])


class UncheckedResult(TypedDict):
    """A scenario's result whose recommendations the check has yet to confirm (JSON-ready)."""

    version: int
    result: ScenarioResult  # without the recommendations' "simulated" figures
    plan: CheckPlan
    # the scenario's own first plan["replications"] (CHECK_FIELDS) when the check reuses
    # them as its run-to-failure side (a run-to-failure scenario), else {}
    head: dict[str, EncodedArray]


def merge(
    chunks: Sequence[ChunkResult], check_chunks: Sequence[CheckChunk] | None = None
) -> ScenarioResult:
    """Combine chunks (any order, any split) into the scenario's result. The recommendation
    check runs in this process unless `check_chunks` (run_check_chunk on check_plan(chunks),
    any split, any order) bring it."""
    unchecked = merge_unchecked(chunks)
    if check_chunks is None:  # the check in this process
        scenario = scenario_from_dict(unchecked["result"]["scenario"])
        plan = unchecked["plan"]
        check_chunks = [run_check_chunk(scenario, plan, 0, plan["replications"])]
    return complete(unchecked, check_chunks)


def complete(unchecked: UncheckedResult, check_chunks: Sequence[CheckChunk]) -> ScenarioResult:
    """The result with its recommendations checked: merge_unchecked(chunks) (also after a trip
    through JSON) and the check's chunks, any split, any order."""
    if unchecked.get("version") != RESULT_VERSION:
        raise MergeError(f"unchecked result version must be {RESULT_VERSION}")
    result = unchecked["result"]
    scenario = scenario_from_dict(result["scenario"])
    head = {name: decode_array(encoded).astype(np.float64) for name, encoded in unchecked["head"].items()}
    recommendations = [asset["recommendation"] for asset in result["assets"]]
    try:
        apply_check(scenario, recommendations, unchecked["plan"], check_chunks, head)
    except CheckError as exc:
        raise MergeError(f"the recommendation check: {exc}") from exc
    return result


def merge_unchecked(chunks: Sequence[ChunkResult]) -> UncheckedResult:
    """Everything of merge() but the recommendation check: the statistics, the
    recommendations, what their check simulates (its plan) and what it reuses."""
    scenario, arrays = _gather(chunks)
    schedule = Schedule(scenario.hours_per_day, scenario.days_per_week)
    horizon_h = scenario.horizon_days * 24.0
    production_h = schedule.to_operating(horizon_h)
    grid = day_grid(scenario.horizon_days)
    grid_h = np.array(grid, dtype=float) * 24.0
    n = scenario.replications

    first_failure = arrays["first_failure_h"]
    rul = arrays["rul_h"]
    failures = arrays["failures"]
    preventive = arrays["preventive"]
    downtime = arrays["downtime_h"]
    pm_cost, cm_cost, downtime_rate = _asset_costs(scenario)
    maintenance_cost = failures * cm_cost + preventive * pm_cost
    downtime_cost = downtime * downtime_rate
    availability = 1.0 - downtime / production_h
    rul_days = schedule.to_calendar_array(rul) / 24.0
    ttf_days = first_failure / 24.0
    ttf_op = schedule.to_operating_array(first_failure)

    laws, recommendations = _recommend(scenario, arrays)
    plan = plan_check(scenario, recommendations)
    reused = [] if RUN_TO_FAILURE in plan["simulate"] else list(CHECK_FIELDS)
    head = {name: encode_array(arrays[name][: plan["replications"]], FIELDS[name]) for name in reused}

    # per-asset statistics, each computed for all assets at once
    summaries = {
        "rul_operating_hours": summarise_columns(rul, 1),
        "rul_days": summarise_columns(rul_days, 1),
        "downtime_hours": summarise_columns(downtime),
        "wait_hours": summarise_columns(arrays["wait_h"]),
        "availability": summarise_columns(availability, 5),
        "maintenance_cost": summarise_columns(maintenance_cost),
        "downtime_cost": summarise_columns(downtime_cost),
        "total_cost": summarise_columns(maintenance_cost + downtime_cost),
    }
    rul_uppers = np.quantile(rul_days, 0.99, axis=0)
    ordered_ffs = np.sort(first_failure, axis=0)
    expected_failures = failures.mean(axis=0)
    expected_preventive = preventive.mean(axis=0)
    assets_out = []
    curves = []
    for k, asset in enumerate(scenario.assets):
        stress = asset_stress(asset, scenario)
        law, recommendation = laws[k], recommendations[k]
        curve = np.searchsorted(ordered_ffs[:, k], grid_h, side="right") / n
        curves.append(curve)
        rul_upper = float(rul_uppers[k])
        assets_out.append(
            {
                "asset_id": asset.asset_id,
                "name": asset.name,
                "stress": {
                    "load": _round(stress.load, 4),
                    "speed_rpm": _round(stress.speed_rpm, 2),
                    "temperature_c": _round(stress.temperature_c, 2),
                    "temperature_change_c": _round(stress.temperature_change_c, 2),
                    "bearing_life_ratio": _round(stress.bearing_life_ratio, 4),
                    "insulation_life_ratio": _round(stress.insulation_life_ratio, 4),
                    "acceleration": _round(stress.acceleration, 4),
                },
                "rul_operating_hours": summaries["rul_operating_hours"][k],
                "rul_days": summaries["rul_days"][k],
                "rul_histogram": histogram(rul_days[:, k], rul_upper),
                "ttf_days": censored_quantiles(ttf_days[:, k], 1),
                "ttf_operating_hours": censored_quantiles(ttf_op[:, k], 1),
                "ttf_histogram": histogram(
                    ttf_days[:, k], float(scenario.horizon_days)
                ),
                "failure_probability": [round(float(p), 4) for p in curve],
                "failure_probability_horizon": round(float(curve[-1]), 4),
                "expected_failures": round(float(expected_failures[k]), 4),
                "expected_preventive": round(float(expected_preventive[k]), 4),
                **{name: summaries[name][k] for name in (
                    "downtime_hours", "wait_hours", "availability", "maintenance_cost",
                    "downtime_cost", "total_cost")},
                "recommendation": recommendation,
                "assumptions": asset_assumptions(asset, stress, law=law),
            }
        )

    any_failed = np.sort(first_failure.min(axis=1))
    any_curve = np.searchsorted(any_failed, grid_h, side="right") / n
    busy = arrays["crew_busy_h"]
    fleet = {
        "expected_failures": round(float(failures.sum(axis=1).mean()), 4),
        "expected_preventive": round(float(preventive.sum(axis=1).mean()), 4),
        "downtime_hours": summarise(downtime.sum(axis=1)),
        "wait_hours": summarise(arrays["wait_h"].sum(axis=1)),
        "availability": summarise(availability.mean(axis=1), 5),
        "maintenance_cost": summarise(maintenance_cost.sum(axis=1)),
        "downtime_cost": summarise(downtime_cost.sum(axis=1)),
        "total_cost": summarise(
            maintenance_cost.sum(axis=1) + downtime_cost.sum(axis=1)
        ),
        "crew_utilisation": round(
            float(busy.mean() / (scenario.crew_size * horizon_h)), 4
        ),
        "expected_failed_assets": [round(float(v), 4) for v in np.sum(curves, axis=0)],
        "any_failure_probability": [round(float(p), 4) for p in any_curve],
    }
    result = {
        "version": RESULT_VERSION,
        "name": scenario.name,
        "scenario_key": chunks[0]["scenario_key"],
        "scenario": scenario_to_dict(scenario),
        "policy": scenario.policy.name,
        "replications": n,
        "horizon_days": scenario.horizon_days,
        "production_hours": round(production_h, 2),
        "day_grid": grid,
        "assets": assets_out,
        "fleet": fleet,
        "assumptions": scenario_assumptions(scenario),
    }
    return {"version": RESULT_VERSION, "result": result, "plan": plan, "head": head}
