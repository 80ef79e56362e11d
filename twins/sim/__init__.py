"""What-if Monte Carlo simulation of a fleet's maintenance, on SimPy. Imports no Django.

Public API (everything JSON-ready crosses Celery as is):

    Scenario, AssetInit, RulEstimate, Policy     plain dataclasses (scenario.py)
    validate_scenario(scenario)                  raises ScenarioError(errors: {field: message})
    scenario_to_dict / scenario_from_dict        exact inverses; from_dict validates
    run_chunk(scenario, start, stop, progress=None, should_stop=None) -> ChunkResult (dict)
    chunk_bounds(replications, chunks)           [(start, stop), ...] for a Celery group
    merge(chunks) -> ScenarioResult (dict)       any order, any split: identical result
    run(scenario) -> ScenarioResult              merge([run_chunk(scenario, 0, n)])
    compare(baseline, others) -> dict            deltas side by side
    to_csv_rows(result) -> list[list]            header + one row per asset + FLEET row

Each asset has one Weibull life law (lifelaw.py) for the part in place, every replacement and
the recommendation; merge() checks each recommendation by simulating it (check.py).

A Celery chord would be: group(chunk_task.s(scenario_dict, a, b) for a, b in
chunk_bounds(n, workers)) | merge_task.s(), each task calling scenario_from_dict then run_chunk.
"""

from __future__ import annotations

from collections.abc import Callable

from twins.sim.report import compare, to_csv_rows
from twins.sim.results import MergeError, ScenarioResult, merge
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
    "ChunkResult",
    "MergeError",
    "Policy",
    "RulEstimate",
    "Scenario",
    "ScenarioError",
    "ScenarioResult",
    "SimulationCancelled",
    "chunk_bounds",
    "compare",
    "merge",
    "run",
    "run_chunk",
    "scenario_from_dict",
    "scenario_to_dict",
    "to_csv_rows",
    "validate_scenario",
]
