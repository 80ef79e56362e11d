"""Edge events (anomalies an edge node raised itself) as alerts, one alert per episode.

A fault usually shows twice: the node's anomaly detector sees the jump within a second, and a
threshold rule on the platform fires once its minimum duration has passed. For the person on
duty that is one problem, so it is one alert:

- an edge event on an asset that has an active alert (any source) is counted on that alert;
- a rule alert that opens while the asset has an active edge alert takes that alert over (the
  same row becomes the rule's alert; it says the edge saw it first);
- the node's "<kind>_cleared" event clears the active edge alert of that kind;
- anomaly events that keep coming for a short while after the asset's rule alert cleared
  (EDGE_FOLLOW_S; a detector needs time to settle after a fault) are counted on that alert
  instead of opening a new one.
Otherwise an edge event opens an edge alert, or re-opens one that cleared within the re-open
window (twins/alert_reopen.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from twins.alert_reopen import reopen_recent
from twins.models import Alert
from twins.rules import NORMAL, SEVERITY_LEVELS

log = logging.getLogger(__name__)

ACTIVE_STATES = (Alert.State.OPEN, Alert.State.ACKNOWLEDGED)
CLEARED_SUFFIX = "_cleared"
EDGE_FOLLOW_S = 600.0


def _fold(alert: Alert, severity: str, message: str, value: float | None, now: datetime) -> bool:
    """Count an event on an alert; True when it escalated the alert (a change worth telling)."""
    escalated = False
    alert.occurrences += 1
    fields = ["occurrences", "updated_at"]
    if alert.source == Alert.Source.EDGE:
        alert.message = message
        alert.value = value if value is not None else alert.value
        fields += ["message", "value"]
        # A more severe repeat escalates (and needs a new acknowledgement).
        if SEVERITY_LEVELS[severity] > SEVERITY_LEVELS.get(alert.severity, NORMAL):
            alert.severity, alert.state, alert.escalated_at = severity, Alert.State.OPEN, now
            fields += ["severity", "state", "escalated_at"]
            escalated = True
    else:
        alert.message = f"Also seen by the edge: {message}"[:2000]
        fields.append("message")
    alert.updated_at = now
    alert.save(update_fields=fields)
    return escalated


def apply_edge_events(event_ids: Sequence[int], stats: dict[str, int], told: list[tuple[int, str]] | None = None) -> list[int]:
    """Turn stored edge events into alert changes; return the ids of alerts that changed.
    ``told`` receives (alert id, 'open'|'escalate'|'clear') for the changes people are told of,
    as the threshold rules' are: an event merely counted on an alert is not news."""
    told = told if told is not None else []
    from ingest.models import EdgeEvent

    events = list(EdgeEvent.objects.filter(id__in=list(event_ids), asset__isnull=False).select_related("asset").order_by("ts", "id"))
    if not events:
        return []
    assets = {e.asset_id for e in events}
    active: dict[int, list[Alert]] = {}
    for alert in Alert.objects.filter(state__in=ACTIVE_STATES, asset_id__in=assets).order_by("opened_at", "id"):
        active.setdefault(alert.asset_id, []).append(alert)
    changed: list[int] = []
    now = timezone.now()
    for ev in events:
        mine = active.setdefault(ev.asset_id, [])
        if ev.kind.endswith(CLEARED_SUFFIX):
            kind = ev.kind[: -len(CLEARED_SUFFIX)]
            for alert in [a for a in mine if a.source == Alert.Source.EDGE and a.kind == kind]:
                if Alert.objects.filter(id=alert.id, state__in=ACTIVE_STATES).update(state=Alert.State.CLEARED, cleared_at=ev.ts, updated_at=now):
                    told.append((alert.id, "clear"))
                mine.remove(alert)
                changed.append(alert.id)
            continue
        severity = ev.severity if ev.severity in SEVERITY_LEVELS else Alert.Severity.WARNING
        score = ev.data.get("score") if isinstance(ev.data, dict) else None
        value = float(score) if isinstance(score, int | float) else None
        message = ev.message or f"{ev.kind} reported by edge node {ev.node_key}"
        same_kind = [a for a in mine if a.source == Alert.Source.EDGE and a.kind == ev.kind]
        target = same_kind[-1] if same_kind else (mine[-1] if mine else None)
        if target is None:
            target = (
                Alert.objects.filter(asset_id=ev.asset_id, source=Alert.Source.RULE, state=Alert.State.CLEARED, cleared_at__gte=ev.ts - timedelta(seconds=EDGE_FOLLOW_S))
                .order_by("-cleared_at").first()
            )
        if target is not None:
            if _fold(target, severity, message, value, now):
                told.append((target.id, "escalate"))
            changed.append(target.id)
            continue
        reopened = reopen_recent(Q(source=Alert.Source.EDGE, asset_id=ev.asset_id, kind=ev.kind[:32]), severity, ev.ts, message=message, value=value)
        if reopened is not None:
            mine.append(Alert.objects.get(id=reopened))
            changed.append(reopened)
            told.append((reopened, "open"))
            continue
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    site_id=ev.asset.site_id, asset_id=ev.asset_id, source=Alert.Source.EDGE, kind=ev.kind[:32], severity=severity,
                    state=Alert.State.OPEN, title=f"{ev.kind.replace('_', ' ').capitalize()} detected at the edge"[:200], message=message,
                    value=value, opened_at=ev.ts,
                )
        except IntegrityError:
            # Another worker opened it first (one active edge alert per asset and kind): join it.
            alert = Alert.objects.filter(source=Alert.Source.EDGE, asset_id=ev.asset_id, kind=ev.kind[:32], state__in=ACTIVE_STATES).first()
            if alert is None:
                log.error("edge event %s: no alert opened and none active", ev.id)
                continue
            if _fold(alert, severity, message, value, now):
                told.append((alert.id, "escalate"))
        else:
            stats["edge_alerts"] = stats.get("edge_alerts", 0) + 1
            told.append((alert.id, "open"))
        mine.append(alert)
        changed.append(alert.id)
    return changed


def take_over_edge_alert(asset_id: int, metric_id: int, rule_id: int, severity: str, title: str, value: float, at: datetime) -> int | None:
    """A rule alert opening on an asset whose edge alert is active (or cleared less than
    EDGE_FOLLOW_S ago: the node's detector settles faster than a slow signal crosses a
    threshold) becomes that same alert: the row turns into the rule's alert, open again if it
    had cleared, so the rule's escalation and clearing drive it. Returns its id, or None."""
    recent = Q(state__in=ACTIVE_STATES) | Q(state=Alert.State.CLEARED, cleared_at__gte=at - timedelta(seconds=EDGE_FOLLOW_S))
    edge = Alert.objects.filter(recent, asset_id=asset_id, source=Alert.Source.EDGE).order_by("-opened_at").first()
    if edge is None:
        return None
    level, was = SEVERITY_LEVELS.get(severity, NORMAL), SEVERITY_LEVELS.get(edge.severity, NORMAL)
    changes: dict[str, Any] = {
        "source": Alert.Source.RULE, "metric_id": metric_id, "rule_id": rule_id, "kind": "threshold", "title": title, "value": value,
        "severity": severity, "message": f"First seen by the edge's anomaly detector: {edge.message}"[:2000], "updated_at": timezone.now(),
    }
    if edge.state == Alert.State.CLEARED:
        changes.update(state=Alert.State.OPEN, cleared_at=None)
    elif level > was and edge.state == Alert.State.ACKNOWLEDGED:
        changes.update(state=Alert.State.OPEN, escalated_at=at)
    try:
        with transaction.atomic():
            updated = Alert.objects.filter(id=edge.id, source=Alert.Source.EDGE, state=edge.state).update(**changes)
    except IntegrityError:
        return None  # the rule has an active alert of its own already (another worker's)
    return edge.id if updated else None
