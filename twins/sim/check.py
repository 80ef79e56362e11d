"""The engine checks its own recommendations.

Each recommended replacement age is simulated by the engine itself: the scenario again with
every asset replaced at its recommended age (time-based, per asset), and again run to failure,
on the scenario's first CHECK_REPLICATIONS replications with the same seeds (common random
numbers: the same lives in both). Per asset and replication the cost per operating hour is
(corrective + preventive + downtime cost) / hours the asset ran; the planner reads its mean with
a 95 % confidence interval for both policies and the saving with its interval (paired).

The check runs in chunks like the simulation itself, so that several workers share it:

    plan = plan_check(scenario, recommendations)        after the scenario's own chunks merged
    run_check_chunk(scenario, plan, start, stop)         any split of 0..plan["replications"]
    apply_check(scenario, recommendations, plan, check_chunks, main_arrays)

Replication i of a check draws from the generator seeded (seed, i) as in the scenario, and the
check's arrays are concatenated in replication order before any statistic: one chunk or many
give the same figures bit for bit. check_recommendations() is the same in one process.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypedDict

import numpy as np

from twins.sim import const
from twins.sim.costs import asset_prices
from twins.sim.runner import FIELDS, EncodedArray, decode_array, encode_array, scenario_key, simulate_columns
from twins.sim.scenario import Policy, Scenario, ScenarioError, scenario_from_dict
from twins.sim.schedule import Schedule

CHECK_VERSION = 1
RECOMMENDED = "recommended"
RUN_TO_FAILURE = "run_to_failure"
# What cost_rates reads of a check's replications, stored as the scenario's chunks store it.
CHECK_FIELDS = ("failures", "preventive", "downtime_h")


class CheckError(ValueError):
    """Check chunks that do not add up to one plan's replications."""


class CheckPlan(TypedDict):
    version: int
    scenario_key: str
    plan_key: str
    replications: int
    intervals: list[float | None]  # recommended age per asset, None: run to failure
    simulate: list[str]  # which policies the check chunks simulate (RECOMMENDED, RUN_TO_FAILURE)


class CheckChunk(TypedDict):
    version: int
    plan_key: str
    start: int
    stop: int
    seconds: float
    arrays: dict[str, dict[str, EncodedArray]]  # policy -> field -> array


def cost_rates(scenario: Scenario, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Cost per operating hour, per replication (rows) and asset (columns), as charged."""
    schedule = Schedule(scenario.hours_per_day, scenario.days_per_week)
    production = schedule.to_operating(scenario.horizon_days * 24.0)
    prices = np.array([asset_prices(scenario, asset) for asset in scenario.assets])
    pm, cm, rate = prices[:, 0], prices[:, 1], prices[:, 2]
    cost = arrays["failures"] * cm + arrays["preventive"] * pm + arrays["downtime_h"] * rate
    ran = np.maximum(production - arrays["downtime_h"], 1.0)
    return cost / ran


def _mean_ci(
    values: np.ndarray, digits: int = 4, floor: float | None = None
) -> tuple[float, list[float]]:
    """Mean and normal 95 % interval; `floor` bounds the interval of a quantity that cannot
    go below it (a cost rate: rare failures give a wide interval around a small mean)."""
    mean = float(values.mean())
    half = const.Z_95 * float(values.std(ddof=1)) / math.sqrt(values.size) if values.size > 1 else 0.0
    low = mean - half if floor is None else max(floor, mean - half)
    return round(mean, digits), [round(low, digits), round(mean + half, digits)]


def policy_scenarios(
    scenario: Scenario, intervals: list[float | None], replications: int
) -> tuple[Scenario, Scenario]:
    """(recommended ages, run to failure), both on the scenario's first replications."""
    assets = [
        replace(asset, pm_interval_hours=interval)
        for asset, interval in zip(scenario.assets, intervals)
    ]
    recommended = replace(
        scenario,
        name=f"{scenario.name} (recommended ages)",
        assets=assets,
        replications=replications,
        policy=Policy(
            const.POLICY_TIME_BASED,
            interval_hours=const.MAX_LIFE_HOURS,  # assets without a recommendation: never
            off_shift=scenario.policy.off_shift,
        ),
    )
    rtf = replace(
        scenario,
        name=f"{scenario.name} (run to failure)",
        replications=replications,
        policy=Policy(off_shift=scenario.policy.off_shift),
    )
    return recommended, rtf


def check_replications(scenario: Scenario) -> int:
    """How many of the scenario's first replications the check simulates."""
    return min(scenario.replications, const.CHECK_REPLICATIONS)


def plan_check(scenario: Scenario, recommendations: list[dict[str, Any]]) -> CheckPlan:
    """What the check simulates: the recommended ages when any asset has one, and run to
    failure unless the scenario's own replications are run to failure already."""
    intervals = [
        rec["interval_hours"] if rec["action"] == "preventive" else None
        for rec in recommendations
    ]
    simulate = []
    if any(interval is not None for interval in intervals):
        simulate.append(RECOMMENDED)
    if scenario.policy.name != const.POLICY_RUN_TO_FAILURE:
        simulate.append(RUN_TO_FAILURE)
    key = scenario_key(scenario)
    replications = check_replications(scenario)
    canonical = json.dumps([key, replications, intervals, simulate], separators=(",", ":"))
    return {
        "version": CHECK_VERSION,
        "scenario_key": key,
        "plan_key": hashlib.sha256(canonical.encode()).hexdigest()[:16],
        "replications": replications,
        "intervals": intervals,
        "simulate": simulate,
    }


def _scenarios(scenario: Scenario, plan: CheckPlan) -> dict[str, Scenario]:
    recommended, rtf = policy_scenarios(scenario, plan["intervals"], plan["replications"])
    return {RECOMMENDED: recommended, RUN_TO_FAILURE: rtf}


def run_check_chunk(
    scenario: Scenario | dict[str, Any],
    plan: CheckPlan,
    start: int,
    stop: int,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CheckChunk:
    """Simulate replications start..stop-1 of each policy the plan checks.

    progress(done, total) counts this chunk's replications (each policy's share of the work
    alike); should_stop() is polled as in run_chunk and raises SimulationCancelled. A dict
    (scenario_to_dict, a Celery task's argument) is accepted and validated."""
    if isinstance(scenario, dict):
        scenario = scenario_from_dict(scenario)
    if plan.get("version") != CHECK_VERSION or plan.get("scenario_key") != scenario_key(scenario):
        raise ScenarioError({"check": "the check plan belongs to another scenario"})
    if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start < stop <= plan["replications"]):
        raise ScenarioError({"check": f"need 0 <= start < stop <= {plan['replications']}, got {start}..{stop}"})
    began = time.perf_counter()
    total = stop - start
    passes = plan["simulate"]
    scenarios = _scenarios(scenario, plan)
    arrays: dict[str, dict[str, EncodedArray]] = {}
    for index, policy in enumerate(passes):
        def share(done: int, _total: int, index: int = index) -> None:
            if progress is not None:
                progress((index * total + done) // len(passes), total)

        columns = simulate_columns(scenarios[policy], start, stop, share, should_stop)
        arrays[policy] = {name: encode_array(np.array(columns[name]), FIELDS[name]) for name in CHECK_FIELDS}
    if progress is not None and not passes:
        progress(total, total)  # nothing to simulate: the scenario's own replications serve
    return {
        "version": CHECK_VERSION,
        "plan_key": plan["plan_key"],
        "start": start,
        "stop": stop,
        "seconds": round(time.perf_counter() - began, 4),
        "arrays": arrays,
    }


def gather_check(plan: CheckPlan, chunks: Sequence[CheckChunk]) -> dict[str, dict[str, np.ndarray]]:
    """The check's arrays per policy, replications in order (float64 of the stored values)."""
    ordered = sorted(chunks, key=lambda chunk: chunk["start"])
    if not ordered:
        raise CheckError("no check chunks")
    if any(chunk.get("version") != CHECK_VERSION or chunk.get("plan_key") != plan["plan_key"] for chunk in ordered):
        raise CheckError("check chunks come from another check plan")
    expected = 0
    for chunk in ordered:
        if chunk["start"] != expected:
            raise CheckError(f"check replications {expected}..{chunk['start'] - 1} are missing or overlap")
        expected = chunk["stop"]
    if expected != plan["replications"]:
        raise CheckError(f"check chunks cover {expected} of {plan['replications']} replications")
    return {
        policy: {
            name: np.concatenate([decode_array(chunk["arrays"][policy][name]) for chunk in ordered]).astype(np.float64)
            for name in CHECK_FIELDS
        }
        for policy in plan["simulate"]
    }


def apply_check(
    scenario: Scenario,
    recommendations: list[dict[str, Any]],
    plan: CheckPlan,
    chunks: Sequence[CheckChunk],
    main: dict[str, np.ndarray],
) -> None:
    """Add each recommendation's simulated figures to it (in place)."""
    replications = plan["replications"]
    arrays = gather_check(plan, chunks)
    scenarios = _scenarios(scenario, plan)
    if RUN_TO_FAILURE in arrays:
        rtf_arrays = arrays[RUN_TO_FAILURE]
    else:  # the scenario is run to failure: its own first replications are the same ones
        rtf_arrays = {name: main[name][:replications] for name in CHECK_FIELDS}
    rtf_rates = cost_rates(scenarios[RUN_TO_FAILURE], rtf_arrays)
    if RECOMMENDED in arrays:
        rec_rates = cost_rates(scenarios[RECOMMENDED], arrays[RECOMMENDED])
    else:
        rec_rates = rtf_rates
    for k, rec in enumerate(recommendations):
        rtf_mean, rtf_ci = _mean_ci(rtf_rates[:, k], floor=0.0)
        rec_mean, rec_ci = _mean_ci(rec_rates[:, k], floor=0.0)
        saved, saved_ci = _mean_ci(rtf_rates[:, k] - rec_rates[:, k], 6)
        scale = 100.0 / rtf_mean if rtf_mean > 0 else 0.0
        rec["simulated"] = {
            "replications": replications,
            "horizon_days": scenario.horizon_days,
            "cost_per_hour": rec_mean,
            "cost_per_hour_ci95": rec_ci,
            "run_to_failure_cost_per_hour": rtf_mean,
            "run_to_failure_cost_per_hour_ci95": rtf_ci,
            "saving_pct": round(saved * scale, 2),
            "saving_pct_ci95": [round(v * scale, 2) for v in saved_ci],
            # nothing happens to this asset within the horizon under either policy
            "quiet": rtf_mean == 0.0 and rec_mean == 0.0,
            # the simulation shows a saving (its 95 % interval above zero)
            "confirmed": saved_ci[0] > 0.0,
        }
        # what the page quotes: the engine's own figures
        rec["cost_per_hour"] = rec_mean
        rec["saving_pct"] = round(saved * scale, 2)


def check_recommendations(
    scenario: Scenario,
    recommendations: list[dict[str, Any]],
    main: dict[str, np.ndarray],
) -> None:
    """The whole check in this process: plan, one chunk, apply."""
    plan = plan_check(scenario, recommendations)
    chunk = run_check_chunk(scenario, plan, 0, plan["replications"])
    apply_check(scenario, recommendations, plan, [chunk], main)
