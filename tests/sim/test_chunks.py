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
    chunk_bounds,
    merge,
    run,
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
