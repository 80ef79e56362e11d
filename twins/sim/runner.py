"""Run replications in chunks that merge exactly, whatever the split.

Replication i draws from its own generator, seeded with (seed, i), and a chunk keeps every
replication's per-asset outcome (compressed). The merge concatenates them in replication order
and only then computes statistics, so one chunk, two chunks or a hundred give the same result
bit for bit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import zlib
from collections.abc import Callable
from typing import Any, NotRequired, TypedDict

import numpy as np

from twins.sim import const
from twins.sim.engine import build_plan, simulate_replication
from twins.sim.scenario import (
    Scenario,
    ScenarioError,
    scenario_from_dict,
    scenario_to_dict,
    validate_scenario,
)

CHUNK_VERSION = 2
# Per-replication, per-asset outcomes a chunk carries, with their storage dtype.
# float32 keeps hours to ~1e-7 relative and halves what crosses the broker; statistics are
# computed from the stored values, so the rounding never depends on the chunking.
FIELDS: dict[str, str] = {
    "first_failure_h": "<f4",
    "rul_h": "<f4",
    "failures": "<i4",
    "preventive": "<i4",
    "downtime_h": "<f4",
    "failure_downtime_h": "<f4",
    "wait_h": "<f4",
    "crew_busy_h": "<f4",  # per replication, summed over assets: only utilisation needs it
}


PER_ASSET = [name for name in FIELDS if name != "crew_busy_h"]


class EncodedArray(TypedDict):
    dtype: str
    shape: list[int]
    zlib_b64: str


class ChunkResult(TypedDict):
    version: int
    scenario_key: str
    scenario: NotRequired[dict[str, Any]]  # in the chunk that starts at 0 only: the merge's copy
    start: int
    stop: int
    seconds: float
    arrays: dict[str, EncodedArray]


class SimulationCancelled(Exception):
    """should_stop() asked to stop; `done` replications had finished."""

    def __init__(self, done: int) -> None:
        self.done = done
        super().__init__(f"simulation cancelled after {done} replications")


def scenario_key(scenario: Scenario) -> str:
    """Fingerprint of a scenario: chunks of different scenarios must never be merged."""
    canonical = json.dumps(
        scenario_to_dict(scenario), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_array(array: np.ndarray, dtype: str) -> EncodedArray:
    data = np.ascontiguousarray(array, dtype=dtype)
    return {
        "dtype": dtype,
        "shape": list(data.shape),
        "zlib_b64": base64.b64encode(zlib.compress(data.tobytes(), 1)).decode("ascii"),
    }


def decode_array(encoded: EncodedArray) -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(encoded["zlib_b64"]))
    return np.frombuffer(raw, dtype=encoded["dtype"]).reshape(encoded["shape"])


def run_chunk(
    scenario: Scenario | dict[str, Any],
    start: int,
    stop: int,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress_every: int = const.PROGRESS_EVERY,
) -> ChunkResult:
    """Simulate replications start..stop-1 of `scenario`.

    progress(done, total) is called every `progress_every` replications and at the end;
    should_stop() is polled as often and raises SimulationCancelled when it returns True.
    A dict (scenario_to_dict, e.g. a Celery task's argument) is accepted and validated.
    """
    if isinstance(scenario, dict):
        scenario = scenario_from_dict(scenario)
    validate_scenario(scenario)
    if not (
        isinstance(start, int)
        and isinstance(stop, int)
        and 0 <= start < stop <= scenario.replications
    ):
        raise ScenarioError(
            {
                "chunk": f"need 0 <= start < stop <= {scenario.replications}, "
                f"got {start}..{stop}"
            }
        )
    began = time.perf_counter()
    columns = simulate_columns(scenario, start, stop, progress, should_stop, progress_every)
    result: ChunkResult = {
        "version": CHUNK_VERSION,
        "scenario_key": scenario_key(scenario),
        "start": start,
        "stop": stop,
        "seconds": round(time.perf_counter() - began, 4),
        "arrays": {
            name: encode_array(np.array(columns[name]), dtype)
            for name, dtype in FIELDS.items()
        },
    }
    if start == 0:  # one copy of the scenario per run is enough (a site's can weigh 250 kB)
        result["scenario"] = scenario_to_dict(scenario)
    return result


def simulate_columns(
    scenario: Scenario,
    start: int,
    stop: int,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress_every: int = const.PROGRESS_EVERY,
) -> dict[str, list]:
    """Per-replication outcomes of replications start..stop-1 (lists, one row each)."""
    plan = build_plan(scenario)
    total = stop - start
    columns: dict[str, list] = {name: [] for name in FIELDS}
    for done, replication in enumerate(range(start, stop)):
        if done and done % progress_every == 0:
            if should_stop is not None and should_stop():
                raise SimulationCancelled(done)
            if progress is not None:
                progress(done, total)
        outcome = simulate_replication(plan, [scenario.seed, replication])
        for name in PER_ASSET:
            columns[name].append(getattr(outcome, name))
        columns["crew_busy_h"].append(sum(outcome.busy_h))
    if progress is not None:
        progress(total, total)
    return columns


def simulate_arrays(scenario: Scenario, replications: int) -> dict[str, np.ndarray]:
    """The first `replications` of a scenario as float64 arrays, stored precision (float32)
    first, exactly as a merge sees them."""
    columns = simulate_columns(scenario, 0, replications)
    return {
        name: np.array(columns[name]).astype(dtype).astype(np.float64)
        for name, dtype in FIELDS.items()
    }


def chunk_bounds(replications: int, chunks: int) -> list[tuple[int, int]]:
    """Split 0..replications into `chunks` contiguous ranges of near-equal size."""
    chunks = max(1, min(chunks, replications))
    edges = [replications * i // chunks for i in range(chunks + 1)]
    return [(edges[i], edges[i + 1]) for i in range(chunks)]
