"""Combined conditions on one asset (AND / OR over several metrics) and rate-of-change
conditions, as a pure state machine. No Django here.

Each condition is true or false with its own hysteresis (entering needs the raw threshold,
staying needs it minus the hysteresis); the combination is fed, as 1 or 0, through the same
ConditionState as the threshold rules, so minimum duration, time-based escalation and
de-escalation behave exactly as there. A rate is the change per minute between an asset's two
latest readings of the metric (readings further apart than MAX_GAP_S give no rate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from twins.rules import CRITICAL, MAX_GAP_S, WARNING, ConditionState, Thresholds, Transition


@dataclass(frozen=True)
class Condition:
    metric_id: int
    op: Literal["above", "below"]
    threshold: float
    measure: Literal["value", "rate"] = "value"  # rate: change per minute
    hysteresis: float = 0.0


@dataclass(frozen=True)
class Combined:
    id: int
    combine: Literal["and", "or"]
    level: int  # WARNING or CRITICAL: the alert's severity when the combination holds
    conditions: tuple[Condition, ...]
    min_duration_s: float = 0.0
    escalate_after_s: float | None = None
    deescalate_after_s: float | None = None

    @property
    def metric_ids(self) -> frozenset[int]:
        return frozenset(c.metric_id for c in self.conditions)

    def thresholds(self) -> Thresholds:
        return Thresholds(
            warning_above=0.5 if self.level == WARNING else None, critical_above=0.5 if self.level == CRITICAL else None,
            min_duration_s=self.min_duration_s, escalate_after_s=self.escalate_after_s if self.level == WARNING else None,
            deescalate_after_s=self.deescalate_after_s,
        )


@dataclass
class CombinedState:
    """One (asset, combined rule): the last reading and rate per metric, each condition's truth."""

    last: dict[int, tuple[float, float]] = field(default_factory=dict)
    rate: dict[int, float] = field(default_factory=dict)
    # by the condition itself, not its position: an edited or removed condition's truth is not
    # carried over to another
    held: dict[Condition, bool] = field(default_factory=dict)
    alert: ConditionState = field(default_factory=ConditionState)

    def signals(self) -> dict:
        """What the conditions remember between readings, as JSON (the alert part is stored
        in columns of its own; twins/alert_state.py)."""
        return {
            "last": {str(m): [ts, v] for m, (ts, v) in self.last.items()},
            "rate": {str(m): r for m, r in self.rate.items()},
            "held": {_condition_key(c): h for c, h in self.held.items()},
        }

    @classmethod
    def from_signals(cls, signals: dict, alert: ConditionState) -> CombinedState:
        return cls(
            last={int(m): (float(ts), float(v)) for m, (ts, v) in signals.get("last", {}).items()},
            rate={int(m): float(r) for m, r in signals.get("rate", {}).items()},
            held={_condition_of(k): bool(h) for k, h in signals.get("held", {}).items()},
            alert=alert,
        )

    def observe(self, ts: float, metric_id: int, value: float, rule: Combined) -> Transition | None:
        if not math.isfinite(value):
            return None  # says nothing about the condition (and would poison the rate)
        prev = self.last.get(metric_id)
        if prev is not None and ts <= prev[0]:
            return None  # an older or repeated reading says nothing new
        self.last[metric_id] = (ts, value)
        if prev is not None and ts - prev[0] <= MAX_GAP_S:
            self.rate[metric_id] = (value - prev[1]) / ((ts - prev[0]) / 60.0)
        else:
            self.rate.pop(metric_id, None)
        for c in rule.conditions:
            if c.metric_id != metric_id:
                continue
            x = value if c.measure == "value" else self.rate.get(metric_id)
            if x is None:
                self.held[c] = False
                continue
            was = self.held.get(c, False)
            if c.op == "above":
                self.held[c] = x > (c.threshold - c.hysteresis if was else c.threshold)
            else:
                self.held[c] = x < (c.threshold + c.hysteresis if was else c.threshold)
        for c in [c for c in self.held if c not in rule.conditions]:
            del self.held[c]  # the rule was edited: forget conditions it no longer has
        truths = [self.held.get(c, False) for c in rule.conditions]
        hit = all(truths) if rule.combine == "and" else any(truths)
        return self.alert.observe(ts, 1.0 if hit else 0.0, rule.thresholds())


def _condition_key(c: Condition) -> str:
    return f"{c.metric_id}|{c.op}|{c.threshold!r}|{c.measure}|{c.hysteresis!r}"


def _condition_of(key: str) -> Condition:
    metric_id, op, threshold, measure, hysteresis = key.split("|")
    return Condition(int(metric_id), op, float(threshold), measure, float(hysteresis))  # type: ignore[arg-type]
