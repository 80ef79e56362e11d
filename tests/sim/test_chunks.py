"""Replications split across workers merge to exactly the result of one process."""

from __future__ import annotations

import json
import random

import pytest

from tests.sim.factories import fleet, scenario
from twins.sim import (
    MergeError,
    Policy,
    ScenarioError,
    SimulationCancelled,
    check_plan,
    chunk_bounds,
    complete,
    merge,
    merge_unchecked,
    run,
    run_check_chunk,
    run_chunk,
    scenario_to_dict,
)

# Spares and one crew make the assets interact, so chunking mistakes would show.
SHARED = scenario(
    assets=fleet(6),
    replications=120,
    crew_size=1,
    spare_stock=1,
    spare_lead_time_days=5.0,
    policy=Policy("rul_based", lead_time_hours=200.0),
)


def as_json(result) -> str:
    return json.dumps(result, sort_keys=True)


def over_the_wire(chunk):
    """What a Celery worker hands back: JSON text, decoded again."""
    return json.loads(json.dumps(chunk))


def test_it_reproduces_the_same_seed_exactly_whatever_the_chunking():
    whole = as_json(run(SHARED))
    for bounds in (
        [(0, 60), (60, 120)],
        [(0, 1), (1, 77), (77, 120)],
        chunk_bounds(120, 7),
    ):
        # a Celery task receives the scenario as a dict and returns the chunk as JSON
        chunks = [
            over_the_wire(run_chunk(scenario_to_dict(SHARED), a, b)) for a, b in bounds
        ]
        random.Random(3).shuffle(chunks)  # a chord hands results back in any order
        assert as_json(merge(chunks)) == whole
    assert as_json(run(SHARED)) == whole


def test_the_recommendation_check_gives_the_same_figures_whatever_its_chunking():
    # The check as a second phase, as the workers run it: its plan from the scenario's
    # chunks, then chunks of the check's replications, merged with the scenario's chunks.
    # Once with the scenario's own policy (recommended ages and run to failure simulated),
    # once run to failure (its own first replications serve as the run-to-failure side).
    rtf = scenario(assets=SHARED.assets, replications=120, crew_size=1, spare_stock=1,
                   spare_lead_time_days=5.0)
    for spec in (SHARED, rtf):
        whole = run(spec)
        checked = [a["recommendation"]["simulated"] for a in whole["assets"]]
        assert any(c["cost_per_hour"] != c["run_to_failure_cost_per_hour"] for c in checked)
        chunks = [over_the_wire(run_chunk(spec, a, b)) for a, b in chunk_bounds(120, 3)]
        plan = over_the_wire(check_plan(chunks))
        assert plan["replications"] == 100
        assert plan["simulate"] == (["recommended", "run_to_failure"] if spec is SHARED else ["recommended"])
        for bounds in ([(0, 100)], [(0, 1), (1, 63), (63, 100)], chunk_bounds(100, 8)):
            checks = [
                over_the_wire(run_check_chunk(scenario_to_dict(spec), plan, a, b))
                for a, b in bounds
            ]
            random.Random(5).shuffle(checks)
            assert as_json(merge(chunks, checks)) == as_json(whole)
            # the merge but the check done meanwhile (by another worker), then completed
            unchecked = over_the_wire(merge_unchecked(chunks))
            assert unchecked["plan"] == plan
            assert as_json(complete(unchecked, checks)) == as_json(whole)


def test_it_refuses_check_chunks_that_do_not_cover_the_plan():
    chunks = [run_chunk(SHARED, 0, 120)]
    plan = check_plan(chunks)
    first, second = run_check_chunk(SHARED, plan, 0, 50), run_check_chunk(SHARED, plan, 50, 100)
    with pytest.raises(MergeError, match="cover 50 of 100"):
        merge(chunks, [first])
    with pytest.raises(MergeError, match="missing or overlap"):
        merge(chunks, [first, run_check_chunk(SHARED, plan, 40, 100)])
    # a check planned for another scenario (another seed: other failures, other costs)
    other = scenario(assets=SHARED.assets, replications=120, seed=99, crew_size=1,
                     spare_stock=1, spare_lead_time_days=5.0,
                     policy=Policy("rul_based", lead_time_hours=200.0))
    other_plan = check_plan([run_chunk(other, 0, 120)])
    with pytest.raises(MergeError, match="another check plan"):
        merge(chunks, [run_check_chunk(other, other_plan, 0, 100)])
    with pytest.raises(MergeError, match="another check plan"):
        complete(merge_unchecked(chunks), [run_check_chunk(other, other_plan, 0, 100)])
    with pytest.raises(ScenarioError, match="another scenario"):
        run_check_chunk(SHARED, other_plan, 0, 100)
    with pytest.raises(ScenarioError):
        run_check_chunk(SHARED, plan, 50, 101)
    assert merge(chunks, [second, first]) == merge(chunks)


def test_the_check_reports_progress_over_both_policies_and_stops_when_asked():
    plan = check_plan([run_chunk(SHARED, 0, 120)])
    calls: list[tuple[int, int]] = []
    run_check_chunk(SHARED, plan, 0, 60, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (60, 60) and len(calls) >= 3
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    with pytest.raises(SimulationCancelled):
        run_check_chunk(SHARED, plan, 0, 100, should_stop=lambda: True)


def test_it_changes_with_the_seed():
    first = run(SHARED)["fleet"]
    other = run(scenario(assets=SHARED.assets, seed=12, replications=120, crew_size=1))[
        "fleet"
    ]
    assert first["total_cost"] != other["total_cost"]


def test_it_refuses_incomplete_overlapping_or_mixed_chunks():
    a, b = run_chunk(SHARED, 0, 60), run_chunk(SHARED, 60, 120)
    with pytest.raises(MergeError, match="cover 60 of 120"):
        merge([a])
    with pytest.raises(MergeError, match="missing or overlap"):
        merge([a, run_chunk(SHARED, 50, 120)])
    other = run_chunk(
        scenario(assets=SHARED.assets, replications=120, seed=99), 60, 120
    )
    with pytest.raises(MergeError, match="different scenarios"):
        merge([a, other])
    with pytest.raises(MergeError):
        merge([])
    with pytest.raises(MergeError, match="0..59 are missing"):
        merge([b])
    assert "scenario" in a and "scenario" not in b  # one copy per run: the first chunk's
    assert merge([b, a])["replications"] == 120


def test_it_refuses_chunk_bounds_outside_the_replications():
    with pytest.raises(ScenarioError) as caught:
        run_chunk(SHARED, 100, 130)
    assert "chunk" in caught.value.errors


def test_it_reports_progress_and_stops_when_asked():
    calls: list[tuple[int, int]] = []
    run_chunk(SHARED, 0, 60, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (60, 60)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert len(calls) >= 2
    with pytest.raises(SimulationCancelled) as caught:
        run_chunk(SHARED, 0, 120, should_stop=lambda: True)
    assert 0 < caught.value.done < 120


def test_it_splits_replications_into_contiguous_chunks():
    assert chunk_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert chunk_bounds(2, 5) == [(0, 1), (1, 2)]
    assert chunk_bounds(7, 1) == [(0, 7)]
