"""The production schedule: mapping between calendar hours and operating hours.

Assets run (and wear) only inside production windows: `hours_per_day` from the start of each
of the first `days_per_week` days of every week. Both directions are closed-form, so the engine
turns "this asset fails after x more operating hours" into one calendar timeout instead of
stepping through shifts.
"""

from __future__ import annotations

import math

import numpy as np

HOURS_PER_WEEK = 168.0


class Schedule:
    def __init__(self, hours_per_day: float, days_per_week: int) -> None:
        self.hours_per_day = float(hours_per_day)
        self.days_per_week = int(days_per_week)
        self.week_hours = (
            self.hours_per_day * self.days_per_week
        )  # operating hours per week
        self.continuous = self.hours_per_day >= 24.0 and self.days_per_week == 7

    @property
    def duty(self) -> float:
        """Fraction of calendar time in production."""
        return self.week_hours / HOURS_PER_WEEK

    def to_calendar(self, op: float) -> float:
        """Earliest calendar hour at which `op` operating hours have been worked.

        An instant at a shift's end is that shift's end, not the next shift's start."""
        if self.continuous or op <= 0.0:
            return op
        week, rest = divmod(op, self.week_hours)
        if rest == 0.0:
            week, rest = week - 1.0, self.week_hours
        day, hour = divmod(rest, self.hours_per_day)
        if hour == 0.0:
            day, hour = day - 1.0, self.hours_per_day
        return week * HOURS_PER_WEEK + day * 24.0 + hour

    def shift_end_operating(self, op: float) -> float:
        """Operating hours worked at the end of the shift in which `op` falls (or ends);
        hour 0 is the start of the first shift, so its end is one shift later."""
        if self.continuous:
            return op
        shifts = max(1, math.ceil(op / self.hours_per_day - 1e-12))
        return shifts * self.hours_per_day

    def to_operating(self, cal: float) -> float:
        """Operating hours worked between calendar hour 0 and `cal`."""
        if self.continuous:
            return cal
        week, rest = divmod(cal, HOURS_PER_WEEK)
        day, hour = divmod(rest, 24.0)
        if day >= self.days_per_week:
            return (week + 1) * self.week_hours
        return (
            week * self.week_hours
            + day * self.hours_per_day
            + min(hour, self.hours_per_day)
        )

    def production_hours(self, start: float, end: float) -> float:
        """Production hours lost by an asset that stands still from `start` to `end` (calendar)."""
        if end <= start:
            return 0.0
        return self.to_operating(end) - self.to_operating(start)

    def to_calendar_array(self, op: np.ndarray) -> np.ndarray:
        if self.continuous:
            return np.asarray(op, dtype=float)
        op = np.asarray(op, dtype=float)
        finite = np.isfinite(op)
        positive = np.where(finite, op, 0.0) > 0.0
        week, rest = np.divmod(np.where(finite, op, 0.0), self.week_hours)
        at_week_end = positive & (rest == 0.0)
        week = np.where(at_week_end, week - 1.0, week)
        rest = np.where(at_week_end, self.week_hours, rest)
        day, hour = np.divmod(rest, self.hours_per_day)
        at_shift_end = positive & (hour == 0.0)
        day = np.where(at_shift_end, day - 1.0, day)
        hour = np.where(at_shift_end, self.hours_per_day, hour)
        out = week * HOURS_PER_WEEK + day * 24.0 + hour
        return np.where(finite, np.where(positive, out, op), math.inf)

    def to_operating_array(self, cal: np.ndarray) -> np.ndarray:
        if self.continuous:
            return np.asarray(cal, dtype=float)
        cal = np.asarray(cal, dtype=float)
        finite = np.isfinite(cal)
        week, rest = np.divmod(np.where(finite, cal, 0.0), HOURS_PER_WEEK)
        day, hour = np.divmod(rest, 24.0)
        worked = (
            week * self.week_hours
            + np.minimum(day, self.days_per_week) * self.hours_per_day
        )
        worked = worked + np.where(
            day < self.days_per_week, np.minimum(hour, self.hours_per_day), 0.0
        )
        return np.where(finite, worked, math.inf)
