"""Threshold rules as a pure state machine: readings in, alert transitions out.

No Django here: the alert engine (twins/alerting.py) feeds readings of one (asset, metric)
to its ConditionState and turns the transitions into rows and live messages.

Hysteresis: entering a level needs the raw threshold; staying in it needs only the threshold
minus the hysteresis (for "above"; plus, for "below"). Minimum duration: a change of level
takes effect only once the new level held for ``min_duration_s`` of reading time. Together
they make a noisy signal around a threshold raise one alert, not hundreds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

NORMAL = 0
WARNING = 1
CRITICAL = 2
LEVEL_NAMES = {WARNING: "warning", CRITICAL: "critical"}
SEVERITY_LEVELS = {"info": NORMAL, "warning": WARNING, "critical": CRITICAL}
MAX_GAP_S = 60.0  # readings further apart than this do not prove that a condition held in between


@dataclass(frozen=True)
class Thresholds:
    warning_above: float | None = None
    critical_above: float | None = None
    warning_below: float | None = None
    critical_below: float | None = None
    hysteresis: float = 0.0
    min_duration_s: float = 0.0
    # Time-based: a warning that persists this long becomes critical; a critical alert whose
    # readings are back at warning this long is lowered to warning (None: never).
    escalate_after_s: float | None = None
    deescalate_after_s: float | None = None


@dataclass(frozen=True)
class Transition:
    kind: Literal["open", "escalate", "deescalate", "clear"]
    level: int  # the alert's severity level after the transition (NORMAL for a clear)
    ts: float
    value: float


def level_of(value: float, t: Thresholds, current: int) -> int:
    """The level ``value`` is in, given the level in force (which decides the hysteresis)."""

    def above(threshold: float | None, level: int) -> bool:
        if threshold is None:
            return False
        return value > (threshold - t.hysteresis if level <= current else threshold)

    def below(threshold: float | None, level: int) -> bool:
        if threshold is None:
            return False
        return value < (threshold + t.hysteresis if level <= current else threshold)

    if above(t.critical_above, CRITICAL) or below(t.critical_below, CRITICAL):
        return CRITICAL
    if above(t.warning_above, WARNING) or below(t.warning_below, WARNING):
        return WARNING
    return NORMAL


def describe(value: float, t: Thresholds, level: int) -> str:
    """Which threshold ``value`` is past, in words: 'above critical 90'."""
    name = LEVEL_NAMES.get(level, "normal")
    if level == CRITICAL:
        pairs = (("above", t.critical_above), ("below", t.critical_below))
    else:
        pairs = (("above", t.warning_above), ("below", t.warning_below))
    for side, threshold in pairs:
        if threshold is None:
            continue
        if (side == "above" and value >= threshold - t.hysteresis) or (side == "below" and value <= threshold + t.hysteresis):
            return f"{side} {name} {threshold:g}"
    return name


@dataclass
class ConditionState:
    """The alert state of one (asset, metric); ``alert_id`` is the open alert, if any."""

    level: int = NORMAL  # the level in force
    peak: int = NORMAL  # the open alert's severity (never lowered while it is open)
    alert_id: int | None = None
    up_since: float | None = None
    up_level: int = NORMAL
    down_since: float | None = None
    down_level: int = NORMAL
    last_ts: float | None = None
    level_since: float | None = None  # reading time the level in force was entered
    lowered: bool = False  # the level in force was reached by coming down (de-escalation may follow)

    def observe(self, ts: float, value: float, t: Thresholds) -> Transition | None:
        if math.isnan(value):
            return None
        if self.level != NORMAL and self.level_since is None:
            self.level_since = ts  # a state seeded from an open alert: counts from now
        change = self._observe(ts, value, t)
        if change is not None or self.level == NORMAL or self.level_since is None:
            return change
        return self._by_time(ts, value, t)

    def _by_time(self, ts: float, value: float, t: Thresholds) -> Transition | None:
        """Time-based escalation and de-escalation, on top of hysteresis and minimum duration:
        both count from when the level in force was entered (after its minimum duration)."""
        held = ts - self.level_since
        if t.escalate_after_s is not None and self.level == WARNING and self.peak == WARNING and held >= t.escalate_after_s:
            self.peak = CRITICAL
            return Transition("escalate", CRITICAL, ts, value)
        if t.deescalate_after_s is not None and self.lowered and self.peak > self.level and held >= t.deescalate_after_s:
            self.peak, self.lowered, self.level_since = self.level, False, ts
            return Transition("deescalate", self.level, ts, value)
        return None

    def _observe(self, ts: float, value: float, t: Thresholds) -> Transition | None:
        if self.last_ts is not None and ts - self.last_ts > MAX_GAP_S:
            self.up_since = self.down_since = None
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        target = level_of(value, t, self.level)
        if target > self.level:
            self.down_since = None
            if self.up_since is None:
                self.up_since, self.up_level = ts, target
            else:
                # A rise through warning into critical opens at warning first: the level
                # reached is the lowest one held for the whole duration.
                self.up_level = min(self.up_level, target)
            if ts - self.up_since < t.min_duration_s:
                return None
            was, self.level, self.up_since = self.level, self.up_level, None
            self.level_since, self.lowered = ts, False
            if was == NORMAL:
                self.peak = self.level
                return Transition("open", self.level, ts, value)
            if self.level > self.peak:
                self.peak = self.level
                return Transition("escalate", self.level, ts, value)
            return None
        if target < self.level:
            self.up_since = None
            if self.down_since is None:
                self.down_since, self.down_level = ts, target
            else:
                self.down_level = max(self.down_level, target)
            if ts - self.down_since < t.min_duration_s:
                return None
            self.level, self.down_since = self.down_level, None
            self.level_since, self.lowered = ts, True
            if self.level == NORMAL:
                self.peak = NORMAL
                return Transition("clear", NORMAL, ts, value)
            return None  # critical back to warning: the alert keeps its severity until it clears
        self.up_since = self.down_since = None
        return None
