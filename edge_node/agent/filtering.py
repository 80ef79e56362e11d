"""Deadband and windowed aggregation per metric, so steady signals cost almost nothing.

For each (asset, metric) the filter accumulates samples over the metric's window, reduces
them (mean, max, min or last) when the window closes, and emits the result only if it moved
past the deadband since the value last sent, or if the metric has been silent for
``max_silence_s`` (so the platform still sees a live, steady signal). A metric's first
value is sent at once. ``flush`` bypasses all
of it: anomalies and state changes go out at once with every metric.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import FilterConfig, MetricFilter


@dataclass
class _MetricState:
    spec: MetricFilter
    window_start: float | None = None
    count: int = 0
    total: float = 0.0
    high: float = float("-inf")
    low: float = float("inf")
    last: float = 0.0
    sent_value: float | None = None
    sent_ts: float = 0.0

    def add(self, ts: float, value: float) -> None:
        if self.window_start is None:
            self.window_start = ts
        self.count += 1
        self.total += value
        self.high = max(self.high, value)
        self.low = min(self.low, value)
        self.last = value

    def reduce(self) -> float:
        agg = self.spec.aggregate
        if agg == "max":
            return self.high
        if agg == "min":
            return self.low
        if agg == "last":
            return self.last
        return self.total / self.count

    def reset(self) -> None:
        self.window_start = None
        self.count = 0
        self.total = 0.0
        self.high = float("-inf")
        self.low = float("inf")

    def passes_deadband(self, value: float, ts: float, max_silence_s: float) -> bool:
        if self.sent_value is None or ts - self.sent_ts >= max_silence_s:
            return True
        band = max(self.spec.deadband, self.spec.deadband_pct / 100.0 * abs(self.sent_value))
        return abs(value - self.sent_value) > band


class ReadingFilter:
    def __init__(self, cfg: FilterConfig) -> None:
        self.cfg = cfg
        self._state: dict[tuple[str, str], _MetricState] = {}

    def _metric(self, asset: str, metric: str) -> _MetricState:
        key = (asset, metric)
        st = self._state.get(key)
        if st is None:
            st = self._state[key] = _MetricState(self.cfg.for_metric(metric))
        return st

    def add(self, asset: str, ts: float, values: dict[str, float]) -> dict[str, float]:
        """Feed one sample; return the values to send now (possibly empty)."""
        out: dict[str, float] = {}
        for metric, value in values.items():
            st = self._metric(asset, metric)
            if st.sent_value is None:
                # The first value goes out at once: the platform shows a new asset without
                # waiting for a whole window.
                out[metric] = value
                st.sent_value = value
                st.sent_ts = ts
                continue
            st.add(ts, value)
            if ts - st.window_start < st.spec.window_s:
                continue
            reduced = st.reduce()
            st.reset()
            if st.passes_deadband(reduced, ts, self.cfg.max_silence_s):
                out[metric] = reduced
                st.sent_value = reduced
                st.sent_ts = ts
        return out

    def flush(self, asset: str, ts: float, values: dict[str, float]) -> dict[str, float]:
        """Send this sample as is (anomaly, state change) and restart every window."""
        for metric, value in values.items():
            st = self._metric(asset, metric)
            st.reset()
            st.sent_value = value
            st.sent_ts = ts
        return dict(values)
