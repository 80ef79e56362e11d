"""What the run page's socket speaks, and how workers and services publish to it.

Server -> browser: RunProgress frames, {"type": "scenario.progress", "run", "state", "done",
"total", "checked", "check_total", "error"}: done of total replications simulated, then checked
of check_total replications of the recommendation check (the run's second phase); the same
dict is the channel-layer group message (its type routes to the consumer's scenario_progress
handler). Browser -> server: nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal, TypedDict

from channels.layers import get_channel_layer
from django.db import DatabaseError
from django.db.models import Q, Sum

from ingest.group_sender import send_to_groups
from twins.scenarios import const

log = logging.getLogger(__name__)


class RunProgress(TypedDict):
    type: Literal["scenario.progress"]
    run: int
    state: str
    done: int
    total: int
    checked: int
    check_total: int
    error: str


def progress_key(message: RunProgress) -> int:
    """How far a run is, both phases together: never decreases while it runs."""
    return message["done"] + message["checked"]


def run_group(run_id: int) -> str:
    return f"scenario-run.{run_id}"


def ws_path(run_id: int) -> str:
    return f"/{const.WS_PATH_PREFIX}{run_id}/"


def snapshot(run_id: int) -> RunProgress | None:
    """The run's progress as stored now (None when the run is gone)."""
    from twins.scenarios.models import ScenarioChunk, ScenarioRun

    row = ScenarioRun.objects.filter(id=run_id).values("state", "total", "check_total", "error").first()
    if row is None:
        return None
    if row["state"] == ScenarioRun.State.DONE:
        done, checked = row["total"], row["check_total"]
    else:
        sums = ScenarioChunk.objects.filter(run_id=run_id).aggregate(
            simulated=Sum("done", filter=Q(phase=ScenarioChunk.Phase.SIMULATE)), checked=Sum("done", filter=Q(phase=ScenarioChunk.Phase.CHECK))
        )
        done, checked = sums["simulated"] or 0, sums["checked"] or 0
    return {"type": "scenario.progress", "run": run_id, "state": row["state"], "done": int(done), "total": row["total"],
            "checked": int(checked), "check_total": row["check_total"], "error": row["error"]}


def broadcast(message: RunProgress | None) -> bool:
    """Send to the run's group; a channel-layer outage only delays what the page shows."""
    layer = get_channel_layer()
    if message is None or layer is None:
        return False
    try:
        send_to_groups([(run_group(message["run"]), dict(message))])
    except Exception:
        log.exception("progress of scenario run %s not broadcast", message["run"])
        return False
    return True


def broadcast_snapshot(run_id: int) -> bool:
    return broadcast(snapshot(run_id))


class ChunkProgress:
    """progress(done, total) for run_chunk and run_check_chunk: stores the chunk's count and tells the run's group,
    at most every PROGRESS_INTERVAL_S (the engine calls it every few replications)."""

    def __init__(self, run_id: int, chunk_id: int, interval_s: float = const.PROGRESS_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.run_id = run_id
        self.chunk_id = chunk_id
        self.interval_s = interval_s
        self.clock = clock
        self.last = -float("inf")
        self.sent = 0

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if done < total and now - self.last < self.interval_s:
            return
        self.last = now
        self.publish(done)

    def publish(self, done: int) -> None:
        from twins.scenarios.models import ScenarioChunk

        try:
            ScenarioChunk.objects.filter(id=self.chunk_id).update(done=done)
            message = snapshot(self.run_id)
        except DatabaseError:
            # Progress is best effort: a database hiccup must not stop the simulation.
            log.warning("progress of scenario chunk %s not stored", self.chunk_id, exc_info=True)
            return
        if broadcast(message):
            self.sent += 1


class CancelFlag:
    """should_stop() for run_chunk: true once the run is cancelled, failed or deleted; reads
    the run's row at most every CANCEL_POLL_S."""

    def __init__(self, run_id: int, interval_s: float = const.CANCEL_POLL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.run_id = run_id
        self.interval_s = interval_s
        self.clock = clock
        self.last = clock()
        self.stopped = False
        self.reads = 0

    def __call__(self) -> bool:
        now = self.clock()
        if self.stopped or now - self.last < self.interval_s:
            return self.stopped
        self.last = now
        self.reads += 1
        from twins.scenarios.models import ScenarioRun

        try:
            state = ScenarioRun.objects.filter(id=self.run_id).values_list("state", flat=True).first()
        except DatabaseError:
            log.warning("cancel flag of scenario run %s not readable; next try in %.1f s", self.run_id, self.interval_s, exc_info=True)
            return False
        self.stopped = state not in ScenarioRun.ACTIVE
        return self.stopped
