"""What-if Monte Carlo simulation of a fleet's maintenance, on SimPy. Imports no Django.

Public API (everything JSON-ready crosses Celery as is):

    Scenario, AssetInit, RulEstimate, Policy     plain dataclasses (scenario.py)
    validate_scenario(scenario)                  raises ScenarioError(errors: {field: message})
    scenario_to_dict / scenario_from_dict        exact inverses; from_dict validates
    run_chunk(scenario, start, stop, progress=None, should_stop=None) -> ChunkResult (dict)
    chunk_bounds(replications, chunks)           [(start, stop), ...] for a Celery group
    merge(chunks) -> ScenarioResult (dict)       any order, any split: identical result
    check_plan(chunks) -> CheckPlan (dict)       what the recommendation check simulates
    check_replications(scenario) -> int          on how many replications (known beforehand)
    run_check_chunk(scenario, plan, start, stop, progress=None, should_stop=None)
                                                 -> CheckChunk (dict), a split of the check
    merge(chunks, check_chunks)                  the same result, the check done in chunks
    merge_unchecked(chunks) -> UncheckedResult   merge() but the check (while the check runs)
    complete(unchecked, check_chunks)            -> the same ScenarioResult as merge()
    run(scenario) -> ScenarioResult              merge([run_chunk(scenario, 0, n)])
    compare(baseline, others) -> dict            deltas side by side
    to_csv_rows(result) -> list[list]            header + one row per asset + FLEET row

Each asset has one Weibull life law (lifelaw.py) for the part in place, every replacement and
the recommendation; merge() checks each recommendation by simulating it (check.py).

Celery runs two chords: group(chunk_task.s(scenario_dict, a, b) for a, b in chunk_bounds(n, k))
| plan_task (check_plan), then group([merge_unchecked_task] + [check_task(a, b) for a, b in
chunk_bounds(plan["replications"], k)]) | complete_task (complete(unchecked, check_chunks)), so
that the check and most of the merge are shared by the workers too (twins/scenarios/jobs.py).
"""

from __future__ import annotations

from collections.abc import Callable

from twins.sim.check import CheckChunk, CheckPlan, check_replications, run_check_chunk
from twins.sim.report import compare, to_csv_rows
from twins.sim.results import (
    MergeError,
    ScenarioResult,
    UncheckedResult,
    check_plan,
    complete,
    merge,
    merge_unchecked,
)
from twins.sim.runner import ChunkResult, SimulationCancelled, chunk_bounds, run_chunk
from twins.sim.scenario import (
    AssetInit,
    Policy,
    RulEstimate,
    Scenario,
    ScenarioError,
    scenario_from_dict,
    scenario_to_dict,
    validate_scenario,
)


def run(
    scenario: Scenario,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ScenarioResult:
    """Run every replication in this process and merge."""
    return merge([run_chunk(scenario, 0, scenario.replications, progress, should_stop)])


__all__ = [
    "AssetInit",
    "CheckChunk",
    "CheckPlan",
    "ChunkResult",
    "MergeError",
    "Policy",
    "RulEstimate",
    "Scenario",
    "ScenarioError",
    "ScenarioResult",
    "SimulationCancelled",
    "UncheckedResult",
    "check_plan",
    "check_replications",
    "chunk_bounds",
    "compare",
    "complete",
    "merge",
    "merge_unchecked",
    "run",
    "run_check_chunk",
    "run_chunk",
    "scenario_from_dict",
    "scenario_to_dict",
    "to_csv_rows",
    "validate_scenario",
]
