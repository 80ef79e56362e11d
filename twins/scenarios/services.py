"""State changes of scenarios and runs. Each service owns its transaction and tells the run's
page only after commit; views, consumers and tasks call these, never the ORM directly."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from twins.models import Asset, Site
from twins.scenarios import const
from twins.scenarios.calibration import (
    build_scenarios,
    calibrate_assets,
    current_hours_per_day,
)
from twins.scenarios.models import Scenario, ScenarioChunk, ScenarioRun
from twins.scenarios.progress import broadcast_snapshot
from twins.sim import check_replications, chunk_bounds, scenario_to_dict, validate_scenario

log = logging.getLogger(__name__)


class ScenarioServiceError(Exception):
    """A request the current state does not allow (e.g. cancelling a finished run)."""


def _after_commit_broadcast(run_id: int) -> None:
    transaction.on_commit(lambda: broadcast_snapshot(run_id))


def create_scenario(user: Any, *, name: str, site: Site, assets: Sequence[Asset], params: dict[str, Any], compare_baseline: bool = True) -> Scenario:
    """Store a planner's scenario; `assets` must belong to `site` (the form checks visibility)."""
    if not assets:
        raise ScenarioServiceError("A scenario needs at least one asset.")
    if any(a.site_id != site.id for a in assets):
        raise ScenarioServiceError("Every asset of a scenario must belong to its site.")
    with transaction.atomic():
        scenario = Scenario.objects.create(name=name, site=site, params=params, compare_baseline=compare_baseline, created_by=user)
        scenario.assets.set(assets)
    return scenario


def chunks_per_variant(replications: int, requested: int | None = None) -> int:
    wanted = requested or getattr(settings, "SCENARIO_CHUNKS", const.DEFAULT_CHUNKS)
    if requested is None:  # an explicit request (tests, benchmarks) is honoured as is
        if getattr(settings, "CELERY_EMBEDDED", False):
            # One process, threads sharing the GIL: more chunks would only add queue latency.
            wanted = min(wanted, const.EMBEDDED_CHUNKS)
        wanted = min(wanted, max(1, replications // const.MIN_REPLICATIONS_PER_CHUNK))
    return max(1, min(int(wanted), replications))


def check_chunks_per_variant(check_replications: int, per_variant: int) -> int:
    """Chunks of the recommendation check: as many as the simulation's, each of at least
    MIN_CHECK_REPLICATIONS_PER_CHUNK replications."""
    return max(1, min(per_variant, check_replications // const.MIN_CHECK_REPLICATIONS_PER_CHUNK))


def start_run(scenario_id: int, user: Any = None, chunks: int | None = None, dispatch: bool = True) -> ScenarioRun:
    """Calibrate the scenario's assets from their twins now, store the engine scenarios and
    their chunks (the simulation's and its recommendation check's), and (after commit) queue
    the simulation's chunk tasks. Raises ScenarioError when the calibrated scenario is out of
    the engine's bounds."""
    scenario = Scenario.objects.select_related("site").get(id=scenario_id)
    assets = list(scenario.assets.order_by("name", "id"))
    calibrated = calibrate_assets(assets)
    profile_hours, profile_note = current_hours_per_day(assets)
    specs = build_scenarios(scenario.name, scenario.params, calibrated, profile_hours, scenario.compare_baseline)
    for spec in specs.values():
        validate_scenario(spec)
    replications = specs[const.VARIANT_SCENARIO].replications
    per_variant = chunks_per_variant(replications, chunks)
    checked = check_replications(specs[const.VARIANT_SCENARIO])
    check_chunks = check_chunks_per_variant(checked, per_variant)
    notes = [c.note for c in calibrated]
    notes.append({"asset_id": "", "name": "schedule", "source": "profile", "statement": profile_note.capitalize() + ".", "parameters": {"hours_per_day": profile_hours}})
    with transaction.atomic():
        run = ScenarioRun.objects.create(
            scenario=scenario, created_by=user, chunks_per_variant=per_variant, total=replications * len(specs), check_total=checked * len(specs),
            specs={variant: scenario_to_dict(spec) for variant, spec in specs.items()}, calibration=notes,
        )
        ScenarioChunk.objects.bulk_create(
            [
                ScenarioChunk(run=run, phase=ScenarioChunk.Phase.SIMULATE, variant=variant, index=index, start=start, stop=stop)
                for variant in specs
                for index, (start, stop) in enumerate(chunk_bounds(replications, per_variant))
            ]
            + [
                ScenarioChunk(run=run, phase=ScenarioChunk.Phase.CHECK, variant=variant, index=index, start=start, stop=stop)
                for variant in specs
                for index, (start, stop) in enumerate(chunk_bounds(checked, check_chunks))
            ]
            + [ScenarioChunk(run=run, phase=ScenarioChunk.Phase.MERGE, variant=variant, index=0, start=0, stop=replications) for variant in specs]
        )
        if dispatch:
            transaction.on_commit(lambda: dispatch_run(run.id))
    return run


def _dispatch_chord(run_id: int, phase: str, queue: str | None) -> Any:
    from celery import chord

    from twins.scenarios import tasks

    if queue is None:
        queue = getattr(settings, "SCENARIO_QUEUE", "")
    options = {"queue": queue} if queue else {}
    chunks = ScenarioChunk.objects.filter(run_id=run_id).order_by("index", "variant")
    if phase == ScenarioChunk.Phase.SIMULATE:
        header = [tasks.simulate_chunk.si(chunk_id) for chunk_id in chunks.filter(phase=phase).values_list("id", flat=True)]
        # the callback queues the next phase on the same queue (the worker's settings may differ)
        callback = tasks.plan_checks.si(run_id, queue)
    else:  # the merges first: each is one task, the longest of the phase
        header = [tasks.merge_chunk.si(chunk_id) for chunk_id in chunks.filter(phase=ScenarioChunk.Phase.MERGE).values_list("id", flat=True)]
        header += [tasks.check_chunk.si(chunk_id) for chunk_id in chunks.filter(phase=phase).values_list("id", flat=True)]
        callback = tasks.finish_run.si(run_id)
    try:
        return chord([signature.set(**options) for signature in header])(callback.set(**options))
    except Exception as exc:
        log.exception("scenario run %s (%s phase) could not be queued", run_id, phase)
        fail_run(run_id, f"could not be queued: {exc}")
        return None


def dispatch_run(run_id: int) -> Any:
    """Queue the run: a chord of the simulation's chunk tasks whose callback plans the
    recommendation check and queues it (dispatch_checks) on the same queue. In the embedded
    default (memory transport) the same chords run on the in-process worker. Returns the
    callback's AsyncResult (None when the broker refused the chord)."""
    return _dispatch_chord(run_id, ScenarioChunk.Phase.SIMULATE, None)


def dispatch_checks(run_id: int, queue: str = "") -> Any:
    """Queue the run's second phase on `queue` ("": Celery's default): a chord of each
    variant's merge (all but the check) and the check's chunk tasks, whose callback completes
    the merged results with the check and stores them."""
    return _dispatch_chord(run_id, ScenarioChunk.Phase.CHECK, queue)


def store_check_plans(run_id: int, plans: dict[str, Any]) -> bool:
    """Store what the check simulates (the same plans again when a task is redelivered)."""
    return bool(ScenarioRun.objects.filter(id=run_id, state__in=ScenarioRun.ACTIVE).update(check_plans=plans))


def cancel_run(run_id: int, user: Any = None) -> ScenarioRun:
    """Ask a queued or running run to stop; chunk tasks see it within CANCEL_POLL_S."""
    with transaction.atomic():
        changed = ScenarioRun.objects.filter(id=run_id, state__in=ScenarioRun.ACTIVE).update(state=ScenarioRun.State.CANCELLED, finished_at=timezone.now())
        if not changed:
            state = ScenarioRun.objects.filter(id=run_id).values_list("state", flat=True).first()
            raise ScenarioServiceError("This run does not exist." if state is None else f"This run is {state} already.")
        log.info("scenario run %s cancelled by %s", run_id, getattr(user, "username", user))
        _after_commit_broadcast(run_id)
    return ScenarioRun.objects.get(id=run_id)


def mark_running(run_id: int) -> bool:
    with transaction.atomic():
        changed = ScenarioRun.objects.filter(id=run_id, state=ScenarioRun.State.QUEUED).update(state=ScenarioRun.State.RUNNING, started_at=timezone.now())
        if changed:
            _after_commit_broadcast(run_id)
    return bool(changed)


def fail_run(run_id: int, reason: str) -> bool:
    """Mark an active run failed with a reason the planner reads on the run's page."""
    log.warning("scenario run %s failed: %s", run_id, reason)
    with transaction.atomic():
        changed = ScenarioRun.objects.filter(id=run_id, state__in=ScenarioRun.ACTIVE).update(
            state=ScenarioRun.State.FAILED, error=reason[:2000], finished_at=timezone.now()
        )
        if changed:
            _after_commit_broadcast(run_id)
    return bool(changed)


def store_results(run_id: int, results: dict[str, Any], comparison: dict[str, Any] | None) -> bool:
    """Store the merged results once (a redelivered callback changes nothing) and drop the
    chunks' arrays: the merged result is what stays."""
    with transaction.atomic():
        changed = ScenarioRun.objects.filter(id=run_id, state__in=ScenarioRun.ACTIVE).update(
            state=ScenarioRun.State.DONE, results=results, comparison=comparison, finished_at=timezone.now()
        )
        if changed:
            ScenarioChunk.objects.filter(run_id=run_id).update(data=None)
            _after_commit_broadcast(run_id)
    return bool(changed)
