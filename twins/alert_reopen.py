"""An alert that clears and comes back within ALERT_REOPEN_WINDOW_S is the same alert.

A condition that wobbles across its threshold over minutes (a CO₂ level around lunchtime, a
bearing that warms and cools with the load) would otherwise leave a trail of alerts, each
acknowledged separately, and an acknowledgement would be lost the moment the alert cleared.
Instead the engine re-opens the cleared row: it keeps its id, first opening time, comment and
acknowledgement (if it comes back no worse than what was acknowledged), and counts the return.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from twins.models import Alert
from twins.rules import SEVERITY_LEVELS


def reopen_window() -> timedelta:
    return timedelta(seconds=settings.ALERT_REOPEN_WINDOW_S)


def reopen_recent(condition: Q, severity: str, at: datetime, **changes) -> int | None:
    """Re-open the latest alert matching ``condition`` that cleared at most the window before
    ``at``; return its id, or None when there is none (the caller opens a new one).

    The update is conditional on the row still being cleared, so two workers cannot both
    re-open it; an acknowledgement survives when the alert returns at no higher severity.
    """
    window = reopen_window()
    if window.total_seconds() <= 0:
        return None
    recent = (
        Alert.objects.filter(condition, state=Alert.State.CLEARED, cleared_at__gte=at - window)
        .order_by("-cleared_at", "-id").values("id", "severity", "acknowledged_at", "reopen_count").first()
    )
    if recent is None:
        return None
    level, was = SEVERITY_LEVELS.get(severity, 0), SEVERITY_LEVELS.get(recent["severity"], 0)
    keep_ack = recent["acknowledged_at"] is not None and level <= was
    fields = {
        "state": Alert.State.ACKNOWLEDGED if keep_ack else Alert.State.OPEN,
        "severity": recent["severity"] if level <= was else severity,
        "cleared_at": None, "reopened_at": at, "reopen_count": recent["reopen_count"] + 1, "updated_at": timezone.now(),
        **changes,
    }
    if level > was:
        fields["escalated_at"] = at
    updated = Alert.objects.filter(id=recent["id"], state=Alert.State.CLEARED).update(**fields)
    return recent["id"] if updated else None
