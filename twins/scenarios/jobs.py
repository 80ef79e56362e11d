"""What the Celery tasks do, as plain functions tests call directly: simulate one chunk, and
merge a run's chunks into its results. Both take ids, are idempotent and return quietly when
the run is gone or no longer active."""

from __future__ import annotations

import logging
from typing import Any

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from twins.scenarios import const
from twins.scenarios.models import ScenarioChunk, ScenarioRun
from twins.scenarios.progress import CancelFlag, ChunkProgress
from twins.scenarios.services import fail_run, mark_running, store_results
from twins.sim import (
    MergeError,
    ScenarioError,
    SimulationCancelled,
    compare,
    merge,
    run_chunk,
)

log = logging.getLogger(__name__)


def simulate_chunk(chunk_id: int) -> dict[str, Any]:
    """Run one chunk's replications and store its ChunkResult on its row."""
    chunk = ScenarioChunk.objects.filter(id=chunk_id).select_related("run").defer("data", "run__results", "run__comparison").first()
    if chunk is None:
        log.info("scenario chunk %s is gone: nothing to do", chunk_id)
        return {"chunk": chunk_id, "status": "gone"}
    run = chunk.run
    if ScenarioChunk.objects.filter(id=chunk_id, data__isnull=False).exists():
        return {"chunk": chunk_id, "status": "already done"}  # a redelivered task
    if run.state not in ScenarioRun.ACTIVE:
        return {"chunk": chunk_id, "status": run.state}
    mark_running(run.id)
    progress = ChunkProgress(run.id, chunk_id)
    try:
        result = run_chunk(run.specs[chunk.variant], chunk.start, chunk.stop, progress=progress, should_stop=CancelFlag(run.id))
    except SimulationCancelled as exc:
        log.info("scenario run %s chunk %s stopped after %s replications", run.id, chunk_id, exc.done)
        return {"chunk": chunk_id, "status": "stopped"}
    except (OperationalError, InterfaceError):
        raise  # the task retries with backoff
    except (ScenarioError, KeyError) as exc:
        fail_run(run.id, f"the stored scenario is invalid: {exc}")
        return {"chunk": chunk_id, "status": "failed"}
    except Exception as exc:  # a bug in the engine: the planner must see the run fail, not hang
        log.exception("scenario run %s chunk %s crashed", run.id, chunk_id)
        fail_run(run.id, f"the simulation crashed: {type(exc).__name__}: {exc}")
        return {"chunk": chunk_id, "status": "failed"}
    with transaction.atomic():
        ScenarioChunk.objects.filter(id=chunk_id, data__isnull=True).update(
            data=result, done=chunk.stop - chunk.start, seconds=result["seconds"], finished_at=timezone.now()
        )
    progress.publish(chunk.stop - chunk.start)
    return {"chunk": chunk_id, "status": "done", "seconds": result["seconds"]}


def finish_run(run_id: int) -> dict[str, Any]:
    """Merge each variant's chunks (read from the DB, not the result backend) and store the
    results and the comparison against the baseline."""
    run = ScenarioRun.objects.filter(id=run_id).only("id", "state", "specs").first()
    if run is None:
        return {"run": run_id, "status": "gone"}
    if run.state not in ScenarioRun.ACTIVE:
        return {"run": run_id, "status": run.state}
    results: dict[str, Any] = {}
    for variant in run.specs:
        chunks = list(ScenarioChunk.objects.filter(run_id=run_id, variant=variant).order_by("start").values_list("data", flat=True))
        if any(data is None for data in chunks):
            # Stopped chunks leave no data: the run was cancelled (or failed) meanwhile.
            state = ScenarioRun.objects.filter(id=run_id).values_list("state", flat=True).first()
            if state in ScenarioRun.ACTIVE:
                fail_run(run_id, f"{sum(d is None for d in chunks)} chunk(s) of the {variant} have no result")
            return {"run": run_id, "status": "incomplete"}
        try:
            results[variant] = merge(chunks)
        except MergeError as exc:
            fail_run(run_id, f"the {variant}'s chunks do not merge: {exc}")
            return {"run": run_id, "status": "failed"}
    comparison = None
    if const.VARIANT_BASELINE in results:
        comparison = compare(results[const.VARIANT_BASELINE], [results[const.VARIANT_SCENARIO]])
    stored = store_results(run_id, results, comparison)
    return {"run": run_id, "status": "done" if stored else "not active"}


def run_all_chunks(run_id: int) -> dict[str, Any]:
    """Every chunk in this process, then the merge: the one-task path (no chord needed)."""
    for chunk_id in ScenarioChunk.objects.filter(run_id=run_id).order_by("index", "variant").values_list("id", flat=True):
        simulate_chunk(chunk_id)
    return finish_run(run_id)
