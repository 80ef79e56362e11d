"""What the Celery tasks do, as plain functions tests call directly. A run has two phases:
the simulation's chunks (simulate_chunk); then, planned from all of them (plan_checks), the
check of its recommendations in chunks (check_chunk) beside each variant's merge of all but the
check (merge_chunk); finish_run completes the merges with the check and stores the results.
Each takes ids, is idempotent and returns quietly when the run is gone or no longer active."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from twins.scenarios import const
from twins.scenarios.models import ScenarioChunk, ScenarioRun
from twins.scenarios.progress import CancelFlag, ChunkProgress
from twins.scenarios.services import fail_run, mark_running, store_check_plans, store_results
from twins.sim import (
    MergeError,
    ScenarioError,
    SimulationCancelled,
    check_plan,
    compare,
    complete,
    merge_unchecked,
    run_check_chunk,
    run_chunk,
)

log = logging.getLogger(__name__)
SIMULATE, CHECK, MERGE = ScenarioChunk.Phase.SIMULATE, ScenarioChunk.Phase.CHECK, ScenarioChunk.Phase.MERGE

# (run, chunk, progress, should_stop) -> the chunk's data
Work = Callable[[ScenarioRun, ScenarioChunk, ChunkProgress, CancelFlag], dict[str, Any]]


def _run_chunk(chunk_id: int, phase: str, work: Work) -> dict[str, Any]:
    """Run one chunk of `phase` and store its data on its row."""
    chunk = ScenarioChunk.objects.filter(id=chunk_id, phase=phase).select_related("run").defer("data", "run__results", "run__comparison", "run__calibration").first()
    if chunk is None:
        log.info("scenario %s chunk %s is gone: nothing to do", phase, chunk_id)
        return {"chunk": chunk_id, "status": "gone"}
    run = chunk.run
    if ScenarioChunk.objects.filter(id=chunk_id, data__isnull=False).exists():
        return {"chunk": chunk_id, "status": "already done"}  # a redelivered task
    if run.state not in ScenarioRun.ACTIVE:
        return {"chunk": chunk_id, "status": run.state}
    mark_running(run.id)
    progress = ChunkProgress(run.id, chunk_id)
    try:
        result = work(run, chunk, progress, CancelFlag(run.id))
    except SimulationCancelled as exc:
        log.info("scenario run %s %s chunk %s stopped after %s replications", run.id, phase, chunk_id, exc.done)
        return {"chunk": chunk_id, "status": "stopped"}
    except (OperationalError, InterfaceError):
        raise  # the task retries with backoff
    except (ScenarioError, KeyError) as exc:
        fail_run(run.id, f"the stored scenario is invalid: {exc}")
        return {"chunk": chunk_id, "status": "failed"}
    except Exception as exc:  # a bug in the engine: the planner must see the run fail, not hang
        log.exception("scenario run %s %s chunk %s crashed", run.id, phase, chunk_id)
        fail_run(run.id, f"the simulation crashed: {type(exc).__name__}: {exc}")
        return {"chunk": chunk_id, "status": "failed"}
    with transaction.atomic():
        ScenarioChunk.objects.filter(id=chunk_id, data__isnull=True).update(
            data=result, done=chunk.stop - chunk.start, seconds=result["seconds"], finished_at=timezone.now()
        )
    progress.publish(chunk.stop - chunk.start)
    return {"chunk": chunk_id, "status": "done", "seconds": result["seconds"]}


def simulate_chunk(chunk_id: int) -> dict[str, Any]:
    """Run one chunk of the simulation's replications."""
    return _run_chunk(chunk_id, SIMULATE, lambda run, chunk, progress, should_stop: run_chunk(
        run.specs[chunk.variant], chunk.start, chunk.stop, progress=progress, should_stop=should_stop))


def check_chunk(chunk_id: int) -> dict[str, Any]:
    """Run one chunk of the recommendation check (its plan stored by plan_checks)."""
    def work(run: ScenarioRun, chunk: ScenarioChunk, progress: ChunkProgress, should_stop: CancelFlag) -> dict[str, Any]:
        plan = (run.check_plans or {}).get(chunk.variant)
        if plan is None:
            raise ScenarioError({"check": f"the {chunk.variant}'s check has no plan yet"})
        return run_check_chunk(run.specs[chunk.variant], plan, chunk.start, chunk.stop, progress=progress, should_stop=should_stop)

    return _run_chunk(chunk_id, CHECK, work)


def merge_chunk(chunk_id: int) -> dict[str, Any]:
    """Merge a variant's simulation chunks but the recommendation check, while it runs."""
    chunk = ScenarioChunk.objects.filter(id=chunk_id, phase=MERGE).select_related("run").only("id", "run", "variant", "start", "stop", "run__state").first()
    if chunk is None:
        log.info("scenario merge %s is gone: nothing to do", chunk_id)
        return {"chunk": chunk_id, "status": "gone"}
    run_id = chunk.run_id
    if ScenarioChunk.objects.filter(id=chunk_id, data__isnull=False).exists():
        return {"chunk": chunk_id, "status": "already done"}  # a redelivered task
    if chunk.run.state not in ScenarioRun.ACTIVE:
        return {"chunk": chunk_id, "status": chunk.run.state}
    chunks = _phase_data(run_id, chunk.variant, SIMULATE)
    if chunks is None:
        return {"chunk": chunk_id, "status": "incomplete"}
    began = time.perf_counter()
    try:
        unchecked = merge_unchecked(chunks)
    except MergeError as exc:
        fail_run(run_id, f"the {chunk.variant}'s chunks do not merge: {exc}")
        return {"chunk": chunk_id, "status": "failed"}
    seconds = round(time.perf_counter() - began, 4)
    with transaction.atomic():
        ScenarioChunk.objects.filter(id=chunk_id, data__isnull=True).update(
            data=unchecked, done=chunk.stop - chunk.start, seconds=seconds, finished_at=timezone.now()
        )
    return {"chunk": chunk_id, "status": "done", "seconds": seconds}


def _phase_data(run_id: int, variant: str, phase: str) -> list[dict[str, Any]] | None:
    """The chunks' data of one variant and phase, None (the run failed, unless it stopped
    already) when a chunk has none: it stopped when the run was cancelled or failed meanwhile."""
    data = list(ScenarioChunk.objects.filter(run_id=run_id, variant=variant, phase=phase).order_by("start").values_list("data", flat=True))
    if data and all(d is not None for d in data):
        return data
    state = ScenarioRun.objects.filter(id=run_id).values_list("state", flat=True).first()
    if state in ScenarioRun.ACTIVE:
        missing = sum(d is None for d in data) if data else "all"
        fail_run(run_id, f"{missing} {phase} chunk(s) of the {variant} have no result")
    return None


def plan_checks(run_id: int) -> dict[str, Any]:
    """Once the simulation's chunks are in: each variant's recommendations and what their
    check simulates, stored on the run for the check chunks. Status "planned" when the check
    phase is to be queued."""
    run = ScenarioRun.objects.filter(id=run_id).only("id", "state", "specs").first()
    if run is None:
        return {"run": run_id, "status": "gone"}
    if run.state not in ScenarioRun.ACTIVE:
        return {"run": run_id, "status": run.state}
    plans: dict[str, Any] = {}
    for variant in run.specs:
        chunks = _phase_data(run_id, variant, SIMULATE)
        if chunks is None:
            return {"run": run_id, "status": "incomplete"}
        try:
            plans[variant] = check_plan(chunks)
        except MergeError as exc:
            fail_run(run_id, f"the {variant}'s chunks do not merge: {exc}")
            return {"run": run_id, "status": "failed"}
    stored = store_check_plans(run_id, plans)
    return {"run": run_id, "status": "planned" if stored else "not active"}


def finish_run(run_id: int) -> dict[str, Any]:
    """Complete each variant's merge with its check chunks (read from the DB, not the result
    backend) and store the results and the comparison against the baseline."""
    run = ScenarioRun.objects.filter(id=run_id).only("id", "state", "specs").first()
    if run is None:
        return {"run": run_id, "status": "gone"}
    if run.state not in ScenarioRun.ACTIVE:
        return {"run": run_id, "status": run.state}
    results: dict[str, Any] = {}
    for variant in run.specs:
        unchecked = _phase_data(run_id, variant, MERGE)
        checks = _phase_data(run_id, variant, CHECK) if unchecked is not None else None
        if unchecked is None or checks is None:
            return {"run": run_id, "status": "incomplete"}
        try:
            results[variant] = complete(unchecked[0], checks)
        except MergeError as exc:
            fail_run(run_id, f"the {variant}'s chunks do not merge: {exc}")
            return {"run": run_id, "status": "failed"}
    comparison = None
    if const.VARIANT_BASELINE in results:
        comparison = compare(results[const.VARIANT_BASELINE], [results[const.VARIANT_SCENARIO]])
    stored = store_results(run_id, results, comparison)
    return {"run": run_id, "status": "done" if stored else "not active"}


def run_all_chunks(run_id: int) -> dict[str, Any]:
    """Both phases in this process, then the merge: the one-task path (no chord needed)."""
    for chunk_id in ScenarioChunk.objects.filter(run_id=run_id, phase=SIMULATE).order_by("index", "variant").values_list("id", flat=True):
        simulate_chunk(chunk_id)
    planned = plan_checks(run_id)
    if planned["status"] != "planned":
        return planned
    for chunk_id in ScenarioChunk.objects.filter(run_id=run_id, phase=MERGE).order_by("variant").values_list("id", flat=True):
        merge_chunk(chunk_id)
    for chunk_id in ScenarioChunk.objects.filter(run_id=run_id, phase=CHECK).order_by("index", "variant").values_list("id", flat=True):
        check_chunk(chunk_id)
    return finish_run(run_id)
