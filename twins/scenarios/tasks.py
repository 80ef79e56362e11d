"""Celery tasks: thin wrappers over jobs.py. They take ids, serialise as JSON, retry database
hiccups with backoff (bounded) and are safe to run twice (acks_late redelivery)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from twins.scenarios import const, jobs
from twins.scenarios.services import dispatch_checks, fail_run

log = logging.getLogger(__name__)
RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "max_retries": const.TASK_MAX_RETRIES,
    "acks_late": True,
}


class ChunkTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:  # retries exhausted
        from twins.scenarios.models import ScenarioChunk

        chunk_id = args[0] if args else kwargs.get("chunk_id")
        try:
            run_id = ScenarioChunk.objects.filter(id=chunk_id).values_list("run_id", flat=True).first()
            if run_id is not None:
                fail_run(run_id, f"chunk task failed: {type(exc).__name__}: {exc}")
        except Exception:
            log.exception("could not mark the run of chunk %s failed", chunk_id)


@shared_task(name="scenarios.simulate_chunk", base=ChunkTask, **RETRY)
def simulate_chunk(chunk_id: int) -> dict[str, Any]:
    return jobs.simulate_chunk(chunk_id)


@shared_task(name="scenarios.check_chunk", base=ChunkTask, **RETRY)
def check_chunk(chunk_id: int) -> dict[str, Any]:
    return jobs.check_chunk(chunk_id)


@shared_task(name="scenarios.merge_chunk", base=ChunkTask, **RETRY)
def merge_chunk(chunk_id: int) -> dict[str, Any]:
    return jobs.merge_chunk(chunk_id)


@shared_task(name="scenarios.plan_checks", **RETRY)
def plan_checks(run_id: int, queue: str = "") -> dict[str, Any]:
    """The first chord's callback: plan the recommendation check, then queue its chord on the
    run's queue (again when redelivered: its chunks and callback are idempotent)."""
    outcome = jobs.plan_checks(run_id)
    if outcome["status"] == "planned":
        dispatch_checks(run_id, queue)
    return outcome


@shared_task(name="scenarios.finish_run", **RETRY)
def finish_run(run_id: int) -> dict[str, Any]:
    return jobs.finish_run(run_id)


@shared_task(name="scenarios.run_all_chunks", **RETRY)
def run_all_chunks(run_id: int) -> dict[str, Any]:
    return jobs.run_all_chunks(run_id)
