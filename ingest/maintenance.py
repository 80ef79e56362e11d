"""Maintenance as one job: the telemetry store's partitions (created ahead, a day with rows
waiting in DEFAULT attached safely, expired ones dropped) and the pruning of every table that
would otherwise grow without bound, each with its own horizon.

One job, not a side task of every ingest worker: celery beat runs ``ingest.maintain`` every
MAINTENANCE_INTERVAL_S (the embedded stack runs it on a thread). A session-level advisory lock
makes a second maintainer that starts meanwhile (a second beat by mistake, an operator's
``manage.py maintain``) skip the run instead of racing the first; each step commits on its
own, so a failing step is logged and the others still run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

log = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x41494F54_4D41494E & 0x7FFFFFFFFFFFFFFF  # "AIOTMAIN"
DELETE_CHUNK = 5000  # rows per DELETE, so a big backlog never holds one long transaction


def run_maintenance(now: datetime | None = None) -> dict:
    """Run every step once, under the advisory lock. Returns what each step did; ``{"skipped":
    "locked"}`` when another maintainer holds the lock."""
    now = now or datetime.now(UTC)
    started = time.monotonic()
    if not _try_lock():
        log.info("maintenance skipped: another maintainer holds the lock")
        return {"skipped": "locked"}
    result: dict = {"failed": []}
    try:
        for name, step in STEPS:
            try:
                result[name] = step(now)
            except DatabaseError as exc:
                result["failed"].append(name)
                log.exception("maintenance step %s failed: %s", name, exc)
    finally:
        _unlock()
    result["seconds"] = round(time.monotonic() - started, 3)
    log.info("maintenance: %s", result)
    return result


def _try_lock() -> bool:
    if connection.vendor != "postgresql":
        return True  # SQLite: the embedded stack is one process
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        return bool(cur.fetchone()[0])


def _unlock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])


# --- the steps -------------------------------------------------------------------------------


def maintain_telemetry(now: datetime) -> dict:
    from ingest import timeseries

    return timeseries.maintain(now=now)


def prune_received_message_ids(now: datetime) -> int:
    """Dedupe keys past the redelivery window; never a telemetry message the alert rules have
    not evaluated yet (its node's cursor is behind it)."""
    from ingest.models import ReceivedMessage
    from twins.models import AlertCursor

    waiting = Exists(AlertCursor.objects.filter(node_key=OuterRef("node_key"), seq__lt=OuterRef("seq")))
    cutoff = now - timedelta(days=settings.KEEP_RECEIVED_MESSAGE_IDS_DAYS)
    return _delete_in_chunks(ReceivedMessage.objects.filter(received_at__lt=cutoff).exclude(Q(channel="t") & Q(waiting)))


def downsample_twin_snapshots(now: datetime) -> int:
    """Twin snapshots older than KEEP_TWIN_SNAPSHOTS_FULL_DAYS: the first of each asset and hour stays."""
    cutoff = now - timedelta(days=settings.KEEP_TWIN_SNAPSHOTS_FULL_DAYS)
    hour = "date_trunc('hour', computed_at)" if connection.vendor == "postgresql" else "strftime('%%Y-%%m-%%d %%H', computed_at)"
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                "DELETE FROM twins_twinsnapshot WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
                f"(PARTITION BY asset_id, {hour} ORDER BY computed_at, id) AS n FROM twins_twinsnapshot "
                "WHERE computed_at < %s) AS ranked WHERE n > 1 LIMIT %s)",
                [cutoff, DELETE_CHUNK],
            )
            n = cur.rowcount
        deleted += n
        if n < DELETE_CHUNK:
            return deleted


def prune_dead_letters(now: datetime) -> int:
    from ingest.models import DeadLetter

    return _delete_in_chunks(DeadLetter.objects.filter(received_at__lt=now - timedelta(days=settings.KEEP_DEAD_LETTERS_DAYS)))


def prune_edge_events(now: datetime) -> int:
    from ingest.models import EdgeEvent

    return _delete_in_chunks(EdgeEvent.objects.filter(received_at__lt=now - timedelta(days=settings.KEEP_EDGE_EVENTS_DAYS)))


def prune_audit_events(now: datetime) -> int:
    from edge_node.models import AuditEvent

    return _delete_in_chunks(AuditEvent.objects.filter(at__lt=now - timedelta(days=settings.KEEP_AUDIT_EVENTS_DAYS)))


def _delete_in_chunks(queryset: QuerySet) -> int:
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(queryset.order_by().values_list("id", flat=True)[:DELETE_CHUNK])
            if ids:
                queryset.model.objects.filter(id__in=ids).delete()
        deleted += len(ids)
        if len(ids) < DELETE_CHUNK:
            return deleted


STEPS: list[tuple[str, Callable[[datetime], object]]] = [
    ("telemetry", maintain_telemetry),
    ("received_message_ids", prune_received_message_ids),
    ("twin_snapshots", downsample_twin_snapshots),
    ("dead_letters", prune_dead_letters),
    ("edge_events", prune_edge_events),
    ("audit_events", prune_audit_events),
]
