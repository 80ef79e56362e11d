"""The alert engine's part for combined rules (AND/OR, rate of change): which rows concern
them, their per-(asset, rule) state, and the alert rows their transitions open, change or
clear. Called by AlertEngine inside its transaction; the logic is in twins/composite.py."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from twins.alert_reopen import reopen_recent
from twins.composite import Combined, CombinedState, Condition
from twins.models import Alert, Asset, CombinedRule
from twins.rules import LEVEL_NAMES, NORMAL, SEVERITY_LEVELS, ConditionState, Transition

log = logging.getLogger(__name__)

ACTIVE = (Alert.State.OPEN, Alert.State.ACKNOWLEDGED)


class CombinedRules:
    def __init__(self) -> None:
        self.rules: dict[int, Combined] = {}
        self.names: dict[int, str] = {}
        self.by_metric: dict[int, list[Combined]] = {}
        self.states: dict[tuple[int, int], CombinedState] = {}

    def load(self) -> None:
        rules, names, by_metric = {}, {}, {}
        for r in CombinedRule.objects.filter(enabled=True).prefetch_related("conditions"):
            conditions = tuple(Condition(c.metric_id, c.op, c.threshold, c.measure, c.hysteresis) for c in r.conditions.all())
            if not conditions:
                continue
            rule = Combined(r.id, r.combine, SEVERITY_LEVELS[r.severity], conditions, r.min_duration_s, r.escalate_after_s, r.deescalate_after_s)
            rules[r.id], names[r.id] = rule, r.name
            for metric_id in rule.metric_ids:
                by_metric.setdefault(metric_id, []).append(rule)
        self.rules, self.names, self.by_metric = rules, names, by_metric
        active = Alert.objects.filter(combined_rule_id__in=list(rules), state__in=ACTIVE)
        for alert_id, asset_id, rule_id, severity in active.values_list("id", "asset_id", "combined_rule_id", "severity"):
            key = (asset_id, rule_id)
            if key not in self.states:
                level = SEVERITY_LEVELS.get(severity, NORMAL) or 1
                self.states[key] = CombinedState(alert=ConditionState(level=level, peak=level, alert_id=alert_id))
        for key in [k for k in self.states if k[1] not in rules]:
            del self.states[key]

    def observe(self, rows: Sequence[tuple[datetime, int, int, float]]) -> list[tuple[int, Combined, Transition, ConditionState]]:
        """Rows sorted by time; the transitions they cause."""
        out = []
        if not self.by_metric:
            return out
        for ts, asset_id, metric_id, value in rows:
            for rule in self.by_metric.get(metric_id, ()):
                state = self.states.get((asset_id, rule.id))
                if state is None:
                    state = self.states[(asset_id, rule.id)] = CombinedState()
                change = state.observe(ts.timestamp(), metric_id, value, rule)
                if change is not None:
                    out.append((asset_id, rule, change, state.alert))
        return out

    def apply(self, transitions: list[tuple[int, Combined, Transition, ConditionState]], told: list[tuple[int, str]]) -> list[int]:
        sites = dict(Asset.objects.filter(id__in={t[0] for t in transitions}).values_list("id", "site_id"))
        changed = []
        for asset_id, rule, change, state in transitions:
            at = datetime.fromtimestamp(change.ts, UTC)
            title = f"{self.names.get(rule.id, 'combined rule')} ({LEVEL_NAMES.get(change.level, 'normal')})"
            if change.kind == "open":
                state.alert_id = self._open(asset_id, sites.get(asset_id), rule, change, at, title)
                alert_id = state.alert_id
            elif state.alert_id is None:
                continue
            elif change.kind in ("escalate", "deescalate"):
                fields = {"severity": LEVEL_NAMES[change.level], "state": Alert.State.OPEN, "title": title, "value": change.value, "updated_at": timezone.now()}
                if change.kind == "escalate":
                    fields["escalated_at"] = at
                Alert.objects.filter(id=state.alert_id, state__in=ACTIVE).update(**fields)
                alert_id = state.alert_id
            else:
                Alert.objects.filter(id=state.alert_id, state__in=ACTIVE).update(state=Alert.State.CLEARED, cleared_at=at, updated_at=timezone.now())
                alert_id, state.alert_id = state.alert_id, None
            if alert_id is not None:
                changed.append(alert_id)
                told.append((alert_id, change.kind))
        return changed

    def _open(self, asset_id: int, site_id: int | None, rule: Combined, change: Transition, at: datetime, title: str) -> int | None:
        if site_id is None:
            log.warning("asset %s is gone; no alert opened", asset_id)
            return None
        severity = LEVEL_NAMES[change.level]
        reopened = reopen_recent(Q(combined_rule_id=rule.id, asset_id=asset_id), severity, at, title=title, value=change.value)
        if reopened is not None:
            return reopened
        try:
            with transaction.atomic():
                return Alert.objects.create(
                    site_id=site_id, asset_id=asset_id, combined_rule_id=rule.id, source=Alert.Source.RULE, kind="combined",
                    severity=severity, state=Alert.State.OPEN, title=title, value=change.value, opened_at=at,
                ).id
        except IntegrityError:  # another worker opened it first: join it
            existing = Alert.objects.filter(combined_rule_id=rule.id, asset_id=asset_id, state__in=ACTIVE).first()
            return existing.id if existing else None
