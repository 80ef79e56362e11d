"""Streaming statistical anomaly detector: EWMA mean/variance with a z-score test.

Cheap enough to run on every sample of every metric; it catches sudden changes (steps,
spikes) relative to the recent behaviour of a signal, while the ONNX model catches states
unlike the healthy training data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class _Ewma:
    mean: float = 0.0
    var: float = 0.0
    n: int = 0


class EwmaDetector:
    """Per-metric EWMA z-score. ``update`` returns (metric, z) for the largest |z| over the
    threshold, or None. The std is floored relative to the mean so that a quantised or
    nearly constant signal does not turn every small step into an alarm."""

    def __init__(self, metrics: list[str] | None, alpha: float, z_threshold: float, warmup: int,
                 rel_floor: float = 0.01) -> None:
        self.metrics = set(metrics) if metrics is not None else None
        self.alpha = alpha
        self.z_threshold = z_threshold
        self.warmup = warmup
        self.rel_floor = rel_floor
        self._state: dict[str, _Ewma] = {}

    def update(self, values: dict[str, float]) -> tuple[str, float] | None:
        worst: tuple[str, float] | None = None
        a = self.alpha
        for metric, x in values.items():
            if self.metrics is not None and metric not in self.metrics:
                continue
            st = self._state.get(metric)
            if st is None:
                st = self._state[metric] = _Ewma(mean=x)
            if st.n >= self.warmup:
                std = max(math.sqrt(st.var), self.rel_floor * abs(st.mean), 1e-9)
                z = (x - st.mean) / std
                if abs(z) > self.z_threshold and (worst is None or abs(z) > abs(worst[1])):
                    worst = (metric, z)
                # An outlier is not learnt at full weight, so a sustained fault stays visible.
                if abs(z) > self.z_threshold:
                    x = st.mean + math.copysign(self.z_threshold * std, z)
            diff = x - st.mean
            incr = a * diff
            st.mean += incr
            st.var = (1.0 - a) * (st.var + diff * incr)
            st.n += 1
        return worst
