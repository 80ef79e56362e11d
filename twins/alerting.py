"""Alerts: the engine that turns stored readings and edge events into alerts, and the
service functions that change alerts (each owns its transaction and broadcasts only after
commit).

The ingest worker stores the watched readings of each message with its seq (in the batch's
transaction) and calls ``AlertEngine.process_stored(nodes, event_ids)`` after each commit: the
readings are evaluated in the order each node sent them, whichever worker stored them.
``process(rows)`` evaluates rows given directly (one process: tests, the demo's history).
Rules are cached by metric id (a metric belongs to one asset type, so that is the
(asset type, metric) key) and reloaded every RULES_TTL_S; a row without a rule costs one
dict lookup. Per (asset, metric) and per (asset, combined rule) state (twins/rules.py,
twins/composite.py) lives in the database, locked and written in the transaction that
changes the alerts (twins/alert_state.py says why), so every worker of a shared
subscription, and a restarted one, continues the same state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypedDict

from channels.layers import get_channel_layer
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ingest.group_sender import send_to_groups
from ingest.live import asset_group, site_group
from twins.alert_reopen import reopen_recent
from twins.alert_state import load_states, nodes_behind, save_states, take_in_seq_order
from twins.combined_alerts import CombinedRules
from twins.edge_alerts import apply_edge_events, take_over_edge_alert
from twins.models import Alert, AlertRule
from twins.rules import (
    LEVEL_NAMES,
    ConditionState,
    Thresholds,
    Transition,
    describe,
)

log = logging.getLogger(__name__)

RULES_TTL_S = 10.0
EDGE_ALERT_QUIET_S = 15 * 60.0  # an edge alert with no new event for this long clears
EDGE_SWEEP_EVERY_S = 30.0

ACTIVE_STATES = (Alert.State.OPEN, Alert.State.ACKNOWLEDGED)
ACK_COMMENT_MAX = 2000


class AlertPayload(TypedDict):
    id: int
    site: int
    site_name: str
    asset: int | None
    asset_name: str
    metric: str
    source: str
    kind: str
    severity: str
    state: str
    title: str
    message: str
    value: float | None
    occurrences: int
    reopen_count: int
    opened_at: float
    escalated_at: float | None
    cleared_at: float | None
    acknowledged_by: str
    acknowledged_at: float | None
    ack_comment: str


class AlertUpdate(TypedDict):
    """Sent to the alert's site group and asset group whenever an alert changes."""

    type: Literal["alert.update"]
    site: int
    asset: int | None
    alert: AlertPayload


class AlertError(Exception):
    """A state change that is not possible (the alert is gone, or not open any more)."""


def _epoch(dt: datetime | None) -> float | None:
    return dt.timestamp() if dt else None


def serialize_alert(alert: Alert) -> AlertPayload:
    """The alert as the pages show it (needs site, asset, metric and acknowledged_by loaded)."""
    return {
        "id": alert.id,
        "site": alert.site_id,
        "site_name": alert.site.name,
        "asset": alert.asset_id,
        "asset_name": alert.asset.name if alert.asset_id else "",
        "metric": alert.metric.key if alert.metric_id else "",
        "source": alert.source,
        "kind": alert.kind,
        "severity": alert.severity,
        "state": alert.state,
        "title": alert.title,
        "message": alert.message,
        "value": alert.value,
        "occurrences": alert.occurrences,
        "reopen_count": alert.reopen_count,
        "opened_at": alert.opened_at.timestamp(),
        "escalated_at": _epoch(alert.escalated_at),
        "cleared_at": _epoch(alert.cleared_at),
        "acknowledged_by": alert.acknowledged_by.get_username() if alert.acknowledged_by_id else "",
        "acknowledged_at": _epoch(alert.acknowledged_at),
        "ack_comment": alert.ack_comment,
    }


def alerts_for_display():
    return Alert.objects.select_related("site", "asset", "metric", "acknowledged_by")


def broadcast_alerts(alert_ids: Iterable[int]) -> int:
    """Send the current state of these alerts to their site and asset groups; return how many."""
    ids = sorted(set(alert_ids))
    layer = get_channel_layer()
    if not ids or layer is None:
        return 0
    messages: list[AlertUpdate] = [
        {"type": "alert.update", "site": a.site_id, "asset": a.asset_id, "alert": serialize_alert(a)} for a in alerts_for_display().filter(id__in=ids)
    ]

    groups: list[tuple[str, dict]] = []
    for message in messages:
        groups.append((site_group(message["site"]), message))
        if message["asset"] is not None:
            groups.append((asset_group(message["asset"]), message))
    try:
        send_to_groups(groups)
    except Exception:
        # The change is committed; a channel-layer outage only delays what browsers see
        # (they reload the alert list on reconnect).
        log.exception("alert updates %s not broadcast", ids)
        return 0
    return len(messages)


def notify_after_commit(changes: Sequence[tuple[int, str]]) -> None:
    """Hand alert changes ('open', 'escalate', 'clear') to notifications after commit, by task
    name (notify.alert_events): the engine never waits for a mail server."""
    items = [[alert_id, kind] for alert_id, kind in changes]
    if items:
        transaction.on_commit(lambda: _send_notify(items))


def _send_notify(items: list[list]) -> None:
    from web.celery import app

    try:
        app.send_task("notify.alert_events", args=[items])
    except Exception:
        # The alerts are committed and shown; a task-queue outage loses their notifications only.
        log.exception("alert notifications %s not queued", items)


def broadcast_after_commit(alert_ids: Sequence[int]) -> None:
    ids = list(alert_ids)
    if ids:
        transaction.on_commit(lambda: broadcast_alerts(ids))


# --- service functions ---------------------------------------------------------------------


def acknowledge_alert(alert_id: int, user: Any, comment: str = "") -> Alert:
    """Acknowledge an open alert with a comment; AlertError if it is not open (any more)."""
    comment = comment.strip()[:ACK_COMMENT_MAX]
    now = timezone.now()
    with transaction.atomic():
        # Conditional update: two people acknowledging at once, only one wins.
        changed = Alert.objects.filter(id=alert_id, state=Alert.State.OPEN).update(
            state=Alert.State.ACKNOWLEDGED, acknowledged_by=user, acknowledged_at=now, ack_comment=comment, updated_at=now,
        )
        if not changed:
            state = Alert.objects.filter(id=alert_id).values_list("state", flat=True).first()
            raise AlertError("This alert does not exist." if state is None else f"This alert is {state} already.")
        broadcast_after_commit([alert_id])
    return alerts_for_display().get(id=alert_id)


def save_alert_rule(rule: AlertRule) -> AlertRule:
    """Validate and save a rule; the ingest workers pick it up within RULES_TTL_S."""
    rule.full_clean()
    with transaction.atomic():
        rule.save()
    return rule


# --- the engine ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CachedRule:
    id: int
    thresholds: Thresholds
    label: str
    unit: str


class AlertEngine:
    """The alert rules for one ingest worker; the state they decide on lives in the database."""

    def __init__(self, rules_ttl_s: float = RULES_TTL_S, broadcast: bool = True, notify: bool = True) -> None:
        self.rules_ttl_s = rules_ttl_s
        self.broadcast = broadcast
        self.notify = notify
        self.told: list[tuple[int, str]] = []
        self.combined = CombinedRules()
        self.rules: dict[int, CachedRule] = {}
        self.rules_loaded_at = -1e18
        self.swept_at = time.monotonic()
        self.stats = {"rows_checked": 0, "opened": 0, "escalated": 0, "cleared": 0, "edge_alerts": 0, "skipped_seqs": 0}

    # rules

    def load_rules(self) -> None:
        rules: dict[int, CachedRule] = {}
        for r in AlertRule.objects.filter(enabled=True).select_related("metric"):
            t = Thresholds(r.warning_above, r.critical_above, r.warning_below, r.critical_below, r.hysteresis, r.min_duration_s,
                           r.escalate_after_s, r.deescalate_after_s)
            rules[r.metric_id] = CachedRule(r.id, t, r.metric.label or r.metric.key, r.metric.unit)
        self.rules = rules
        self.combined.load()
        self.rules_loaded_at = time.monotonic()

    def _refresh_rules(self) -> None:
        if time.monotonic() - self.rules_loaded_at > self.rules_ttl_s:
            self.load_rules()

    def watched_metrics(self) -> frozenset[int]:
        """The metrics with a rule: the ingest keeps their readings with each message's seq."""
        self._refresh_rules()
        return self._watched()

    # processing

    def process(self, rows: Sequence[tuple[datetime, int, int, float]], event_ids: Sequence[int] = ()) -> list[int]:
        """Evaluate readings given directly, in time order, and edge events; return the ids of
        alerts that changed."""
        self._refresh_rules()
        watched = self._watched()
        ruled = sorted((r for r in rows if r[2] in watched), key=lambda r: r[0]) if watched else []
        if not ruled and not event_ids:
            return self._sweep_edge_alerts([])  # a row without a rule costs no query
        return self._process(lambda: ruled, event_ids)

    def process_stored(self, node_keys: Collection[str], event_ids: Sequence[int] = ()) -> list[int]:
        """Evaluate what the ingest stored for these nodes, in each node's seq order (see
        twins/alert_state.py), and edge events; return the ids of alerts that changed."""
        self._refresh_rules()

        def take() -> list:
            watched = self._watched()
            if not watched or not node_keys:
                return []
            readings, stats = take_in_seq_order(node_keys, watched)
            self.stats["skipped_seqs"] += stats["skipped_seqs"]
            return readings

        return self._process(take, event_ids)

    def catch_up(self) -> list[int]:
        """Evaluate nodes left behind their cursor (a gap that settled, a failed run)."""
        behind = nodes_behind()
        return self.process_stored(behind) if behind else []

    def _watched(self) -> frozenset[int]:
        return frozenset(self.rules) | frozenset(self.combined.by_metric)

    def _process(self, take: Callable[[], list], event_ids: Sequence[int]) -> list[int]:
        changed: list[int] = []
        self.told = []
        with transaction.atomic():
            ruled = take()
            single = [r for r in ruled if r[2] in self.rules]
            self.stats["rows_checked"] += len(single)
            if single:
                changed.extend(self._evaluate(single))
            by_metric = self.combined.by_metric
            combined = [r for r in ruled if r[2] in by_metric] if by_metric else []
            if combined:
                changed.extend(self.combined.evaluate(combined, self.told))
            if event_ids:
                changed.extend(self._apply_events(event_ids))
            if self.broadcast:
                broadcast_after_commit(changed)
            if self.notify:
                notify_after_commit(self.told)
        self.told = []
        return self._sweep_edge_alerts(changed)

    def _sweep_edge_alerts(self, changed: list[int]) -> list[int]:
        if time.monotonic() - self.swept_at > EDGE_SWEEP_EVERY_S:
            self.swept_at = time.monotonic()
            changed.extend(self.clear_quiet_edge_alerts())
        return changed

    def _evaluate(self, ruled: list[tuple[datetime, int, int, float]]) -> list[int]:
        """Feed readings to their (asset, metric) states, locked for this transaction; apply
        the transitions to the alerts and store the states, all in the caller's transaction."""
        rules = self.rules
        states = load_states((asset_id, metric_id) for _ts, asset_id, metric_id, _v in ruled)
        transitions: list[tuple[int, int, CachedRule, Transition, ConditionState]] = []
        for ts, asset_id, metric_id, value in ruled:
            rule = rules[metric_id]
            state = states[(asset_id, metric_id)]
            change = state.observe(ts.timestamp(), value, rule.thresholds)
            if change is not None:
                transitions.append((asset_id, metric_id, rule, change, state))
        changed = self._apply(transitions) if transitions else []
        save_states(states)
        return changed

    def _apply(self, transitions: list[tuple[int, int, CachedRule, Transition, ConditionState]]) -> list[int]:
        from twins.models import Asset

        sites = dict(Asset.objects.filter(id__in={t[0] for t in transitions}).values_list("id", "site_id"))
        changed: list[int] = []
        for asset_id, metric_id, rule, change, state in transitions:
            at = datetime.fromtimestamp(change.ts, UTC)
            if change.kind == "open":
                alert_id = self._open(asset_id, sites.get(asset_id), metric_id, rule, change, at)
                state.alert_id = alert_id
                if alert_id is not None:
                    self.stats["opened"] += 1
            elif state.alert_id is None:
                continue  # the alert could not be opened (asset gone); nothing to change
            elif change.kind == "escalate":
                severity = LEVEL_NAMES[change.level]
                Alert.objects.filter(id=state.alert_id, state__in=ACTIVE_STATES).update(
                    severity=severity, state=Alert.State.OPEN, escalated_at=at, value=change.value, updated_at=timezone.now(),
                    title=self._title(rule, change),
                )
                self.stats["escalated"] += 1
                alert_id = state.alert_id
            elif change.kind == "deescalate":
                # Lowered after the readings stayed a level down for the rule's de-escalation time.
                Alert.objects.filter(id=state.alert_id, state__in=ACTIVE_STATES).update(
                    severity=LEVEL_NAMES[change.level], value=change.value, updated_at=timezone.now(), title=self._title(rule, change),
                )
                alert_id = state.alert_id
            else:
                Alert.objects.filter(id=state.alert_id, state__in=ACTIVE_STATES).update(
                    state=Alert.State.CLEARED, cleared_at=at, updated_at=timezone.now(),
                )
                self.stats["cleared"] += 1
                alert_id, state.alert_id = state.alert_id, None
            if alert_id is not None:
                changed.append(alert_id)
                self.told.append((alert_id, change.kind))
        return changed

    def _title(self, rule: CachedRule, change: Transition) -> str:
        unit = f" {rule.unit}" if rule.unit else ""
        return f"{rule.label} {describe(change.value, rule.thresholds, change.level)}{unit}"

    def _open(self, asset_id: int, site_id: int | None, metric_id: int, rule: CachedRule, change: Transition, at: datetime) -> int | None:
        if site_id is None:
            log.warning("asset %s is gone; no alert opened", asset_id)
            return None
        severity, title = LEVEL_NAMES[change.level], self._title(rule, change)
        taken = take_over_edge_alert(asset_id, metric_id, rule.id, severity, title, change.value, at)
        if taken is not None:
            return taken
        condition = Q(source=Alert.Source.RULE, asset_id=asset_id, metric_id=metric_id)
        reopened = reopen_recent(condition, severity, at, title=title, value=change.value, rule_id=rule.id)
        if reopened is not None:
            return reopened
        try:
            with transaction.atomic():
                return Alert.objects.create(
                    site_id=site_id, asset_id=asset_id, metric_id=metric_id, rule_id=rule.id, source=Alert.Source.RULE, kind="threshold",
                    severity=LEVEL_NAMES[change.level], state=Alert.State.OPEN, title=self._title(rule, change),
                    value=change.value, opened_at=at,
                ).id
        except IntegrityError:
            # Another worker opened it first (one active alert per asset and metric): join it.
            existing = Alert.objects.filter(source=Alert.Source.RULE, asset_id=asset_id, metric_id=metric_id, state__in=ACTIVE_STATES).first()
            return existing.id if existing else None

    def _apply_events(self, event_ids: Sequence[int]) -> list[int]:
        return apply_edge_events(event_ids, self.stats, self.told)

    def clear_quiet_edge_alerts(self, now: datetime | None = None) -> list[int]:
        """Clear edge alerts that had no new event for EDGE_ALERT_QUIET_S."""
        now = now or timezone.now()
        cutoff = now - timedelta(seconds=EDGE_ALERT_QUIET_S)
        with transaction.atomic():
            ids = list(Alert.objects.filter(source=Alert.Source.EDGE, state__in=ACTIVE_STATES, updated_at__lt=cutoff).values_list("id", flat=True))
            if ids:
                Alert.objects.filter(id__in=ids, state__in=ACTIVE_STATES).update(state=Alert.State.CLEARED, cleared_at=now, updated_at=now)
                if self.broadcast:
                    broadcast_after_commit(ids)
                if self.notify:
                    notify_after_commit([(i, "clear") for i in ids])
        return ids

