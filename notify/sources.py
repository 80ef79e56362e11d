"""Where events come from: alert changes (sent by the alert engine after commit) and the
periodic sweep (alerts nobody acknowledged, nodes gone quiet, maintenance due, rollouts
waiting for a second admin or rolled back). Sweep events carry a dedupe key: told once."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from notify import const
from notify.dispatch import record_event
from notify.models import Event

ALERT_EVENT_KINDS = {"open": const.ALERT_OPENED, "escalate": const.ALERT_ESCALATED, "deescalate": const.ALERT_DEESCALATED, "clear": const.ALERT_CLEARED}


def _alert_path(alert) -> str:
    return reverse("asset", args=[alert.asset_id]) if alert.asset_id else reverse("alerts")


def alert_events(changes: list[list]) -> int:
    """[[alert id, 'open'|'escalate'|'clear'], ...] from the alert engine: one event each."""
    from twins.models import Alert

    alerts = {a.id: a for a in Alert.objects.filter(id__in=[c[0] for c in changes]).select_related("site", "asset")}
    told = 0
    for alert_id, change in changes:
        alert = alerts.get(alert_id)
        kind = ALERT_EVENT_KINDS.get(change)
        if alert is None or kind is None:
            continue
        if kind == const.ALERT_OPENED:
            kind = _opened_again(alert)
            if kind is None:
                continue
        where = f"{alert.asset.name}: " if alert.asset_id else ""
        severity = alert.severity
        verb = {const.ALERT_OPENED: "opened", const.ALERT_ESCALATED: "escalated to " + alert.severity,
                const.ALERT_DEESCALATED: "lowered to " + alert.severity, const.ALERT_CLEARED: "cleared"}[kind]
        text = f"{where}{alert.title} ({verb}). Value {alert.value}." if alert.value is not None else f"{where}{alert.title} ({verb})."
        if record_event(kind, title=f"{where}{alert.title} {verb}", severity=severity, site_id=alert.site_id, text=text,
                        path=_alert_path(alert), alert_id=alert.id, data={"alert": alert.id, "state": alert.state}):
            told += 1
    return told


def _opened_again(alert) -> str | None:
    """An 'open' for an alert whose opening was told and that was not told cleared since: a
    rule alert taking over the edge alert that saw the same fault first (twins/edge_alerts.py)
    is one alert for people, told once; an escalation when it opens at a higher severity."""
    last = (Event.objects.filter(alert_id=alert.id, kind__in=(const.ALERT_OPENED, const.ALERT_ESCALATED, const.ALERT_DEESCALATED, const.ALERT_CLEARED))
            .order_by("-id").values_list("kind", "severity").first())
    if last is None or last[0] == const.ALERT_CLEARED:
        return const.ALERT_OPENED
    if const.SEVERITY_RANK.get(alert.severity, 0) > const.SEVERITY_RANK.get(last[1], 0):
        return const.ALERT_ESCALATED
    return None


def unacknowledged_alerts(now: datetime) -> int:
    from twins.models import Alert

    cutoff = now - timedelta(seconds=settings.NOTIFY_UNACK_AFTER_S)
    told = 0
    for alert in Alert.objects.filter(state=Alert.State.OPEN, opened_at__lt=cutoff).select_related("asset"):
        minutes = int((now - alert.opened_at).total_seconds() // 60)
        where = f"{alert.asset.name}: " if alert.asset_id else ""
        if record_event(const.ALERT_UNACKNOWLEDGED, title=f"{where}{alert.title}: not acknowledged for {minutes} min", severity=alert.severity,
                        site_id=alert.site_id, path=_alert_path(alert), alert_id=alert.id,
                        dedupe_key=f"unack:{alert.id}:{alert.opened_at.timestamp():.0f}:{alert.reopen_count}"):
            told += 1
    return told


def offline_nodes(now: datetime) -> int:
    from edge_node.models import EdgeNode

    cutoff = now - timedelta(seconds=settings.NOTIFY_NODE_OFFLINE_AFTER_S)
    told = 0
    for node in EdgeNode.objects.filter(revoked_at__isnull=True, last_seen__lt=cutoff):
        minutes = int((now - node.last_seen).total_seconds() // 60)
        if record_event(const.NODE_OFFLINE, title=f"Edge node {node.node_id} offline for {minutes} min", severity="warning", site_id=node.site_id,
                        path=reverse("nodes"), data={"node": node.node_id}, dedupe_key=f"offline:{node.pk}:{node.last_seen.timestamp():.0f}"):
            told += 1
    return told


def maintenance_due(now: datetime) -> int:
    from twins.models import TwinState

    told = 0
    limit = settings.NOTIFY_RUL_DAYS_BELOW
    for twin in TwinState.objects.filter(rul_days_median__lt=limit).select_related("asset"):
        asset = twin.asset
        by = (now + timedelta(days=max(0.0, twin.rul_days_low if twin.rul_days_low is not None else twin.rul_days_median))).date()
        week = now.date().isocalendar()[:2]
        if record_event(const.MAINTENANCE_DUE, title=f"{asset.name}: maintenance due, recommended by {by.isoformat()}", severity="warning",
                        site_id=asset.site_id, path=reverse("asset", args=[asset.id]),
                        text=f"Remaining useful life about {twin.rul_days_median:.0f} days (80% interval from {twin.rul_days_low} days).",
                        data={"asset": asset.id, "rul_days": twin.rul_days_median, "recommended_date": by.isoformat()},
                        dedupe_key=f"rul:{asset.id}:{week[0]}-{week[1]}"):
            told += 1
    return told


def rollouts(now: datetime) -> int:
    from edge_node.rollouts import const as rc
    from edge_node.rollouts.models import Rollout

    told = 0
    for r in Rollout.objects.filter(state__in=(rc.PROPOSED, rc.ROLLED_BACK), created_at__gt=now - timedelta(days=7)).select_related("model", "proposer"):
        if r.state == rc.PROPOSED:
            kind, title, sev = const.ROLLOUT_AWAITING_APPROVAL, f"Rollout {r.pk} of {r.model.label} waits for a second admin (proposed by {r.proposer.get_username()})", "info"
        else:
            kind, title, sev = const.ROLLOUT_ROLLED_BACK, f"Rollout {r.pk} of {r.model.label} rolled back: {r.reason}", "warning"
        if record_event(kind, title=title, severity=sev, site_id=r.target_site_id, path="/rollouts/", data={"rollout": r.pk},
                        dedupe_key=f"rollout:{r.pk}:{r.state}"):
            told += 1
    return told


def sweep(now: datetime | None = None) -> dict[str, int]:
    """One pass of every periodic source, then the flushes that became due and overdue retries."""
    from notify.dispatch import flush_waiting, retry_overdue

    now = now or timezone.now()
    out = {
        "unacknowledged": unacknowledged_alerts(now), "offline": offline_nodes(now), "maintenance": maintenance_due(now), "rollouts": rollouts(now),
    }
    out["flushed"] = len(flush_waiting(now))
    out["retried"] = len(retry_overdue(now))
    return out
