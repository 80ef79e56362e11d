"""The alert engine's part for combined rules (AND/OR, rate of change): which rows concern
them, and the alert rows their transitions open, change or clear. Called by AlertEngine
inside its transaction; the logic is in twins/composite.py. The per-(asset, rule) state
lives in the database (CombinedCondition), locked and written in that same transaction like
the single-metric rules' state (twins/alert_state.py says why): with a shared subscription
each worker evaluates a different run of the node's messages, in seq order, so no worker's
memory could hold the whole signal, and a restarted worker continues the alert in progress."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from twins.alert_reopen import reopen_recent
from twins.alert_state import load_combined_states, save_combined_states
from twins.composite import Combined, CombinedState, Condition
from twins.models import Alert, Asset, CombinedRule
from twins.rules import LEVEL_NAMES, SEVERITY_LEVELS, ConditionState, Transition

log = logging.getLogger(__name__)

ACTIVE = (Alert.State.OPEN, Alert.State.ACKNOWLEDGED)


class CombinedRules:
    def __init__(self) -> None:
        self.rules: dict[int, Combined] = {}
        self.names: dict[int, str] = {}
        self.by_metric: dict[int, list[Combined]] = {}

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

    def evaluate(self, rows: Sequence[tuple[datetime, int, int, float]], told: list[tuple[int, str]]) -> list[int]:
        """Feed rows (in the order the node sent them) to their (asset, rule) states, locked
        for the caller's transaction; apply the transitions and store the states there too.
        The ids of the alerts that changed."""
        keys = {(asset_id, rule.id) for _ts, asset_id, metric_id, _v in rows for rule in self.by_metric.get(metric_id, ())}
        if not keys:
            return []
        states = load_combined_states(keys)
        transitions = self.observe(rows, states)
        changed = self.apply(transitions, told) if transitions else []
        save_combined_states(states)
        return changed

    def observe(
        self, rows: Sequence[tuple[datetime, int, int, float]], states: dict[tuple[int, int], CombinedState],
    ) -> list[tuple[int, Combined, Transition, ConditionState]]:
        """Rows in order; the transitions they cause to ``states`` (changed in place)."""
        out = []
        for ts, asset_id, metric_id, value in rows:
            for rule in self.by_metric.get(metric_id, ()):
                state = states[(asset_id, rule.id)]
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
