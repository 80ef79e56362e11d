"""Conformal prediction intervals from residuals on units the predicting model never saw.

The residual spread depends on the predicted RUL (tight near failure, wide while the asset
still looks healthy), so quantiles are taken per bin of predicted RUL (Mondrian conformal).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConformalBands:
    """Interval = point + [low, high] residual quantile of the bin the point falls into."""

    upper_edges: (
        np.ndarray
    )  # bin i holds points <= upper_edges[i]; the last edge is +inf
    low: np.ndarray
    high: np.ndarray
    coverage: float

    def interval(self, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = np.asarray(point, dtype=np.float64)
        idx = np.minimum(
            np.searchsorted(self.upper_edges, p, side="left"), len(self.upper_edges) - 1
        )
        return p + self.low[idx], p + self.high[idx]

    def to_json(self) -> dict:
        return {
            "coverage": self.coverage,
            "bins": [
                {
                    "upper_edge": None if math.isinf(e) else float(e),
                    "low": float(lo),
                    "high": float(hi),
                }
                for e, lo, hi in zip(self.upper_edges, self.low, self.high)
            ],
        }

    @classmethod
    def from_json(cls, obj: Mapping) -> ConformalBands:
        bins = obj["bins"]
        return cls(
            upper_edges=np.array(
                [math.inf if b["upper_edge"] is None else b["upper_edge"] for b in bins]
            ),
            low=np.array([b["low"] for b in bins], dtype=np.float64),
            high=np.array([b["high"] for b in bins], dtype=np.float64),
            coverage=float(obj["coverage"]),
        )


def calibrate(
    predicted: np.ndarray, true: np.ndarray, coverage: float, bins: int
) -> ConformalBands:
    """Residual quantiles (true - predicted) per bin of predicted value, equal-count bins.

    Each bin gets the finite-sample conformal levels ceil((n+1)(1-a/2))/n and floor((n+1)a/2)/n,
    so the interval covers a new exchangeable point with probability >= ``coverage``.
    """
    p = np.asarray(predicted, dtype=np.float64)
    r = np.asarray(true, dtype=np.float64) - p
    if len(p) < 2 * bins:
        bins = 1
    edges = (
        np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1]) if bins > 1 else np.array([])
    )
    edges = np.unique(edges)
    upper = np.r_[edges, math.inf]
    idx = np.minimum(np.searchsorted(upper, p, side="left"), len(upper) - 1)
    alpha = 1.0 - coverage
    lows, highs = [], []
    for b in range(len(upper)):
        rb = np.sort(r[idx == b])
        n = len(rb)
        if n == 0:  # a degenerate bin (ties at an edge): fall back to all residuals
            rb, n = np.sort(r), len(r)
        k_hi = min(n, math.ceil((n + 1) * (1 - alpha / 2)))
        k_lo = max(1, math.floor((n + 1) * (alpha / 2)))
        lows.append(min(rb[k_lo - 1], 0.0))
        highs.append(max(rb[k_hi - 1], 0.0))
    return ConformalBands(upper, np.array(lows), np.array(highs), coverage)


@dataclass(frozen=True)
class NormalisedBands:
    """Normalised conformal interval: point + q * (point + offset), q the low/high quantile of
    the calibration scores (true - predicted) / (predicted + offset). The width grows with the
    predicted RUL: tight near failure, wide while wear barely shows."""

    offset: float
    low: float
    high: float
    coverage: float

    def interval(self, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = np.asarray(point, dtype=np.float64)
        scale = np.maximum(p, 0.0) + self.offset
        return p + self.low * scale, p + self.high * scale

    def to_json(self) -> dict:
        return {
            "method": "normalised",
            "coverage": self.coverage,
            "offset": self.offset,
            "low": self.low,
            "high": self.high,
        }


def calibrate_normalised(
    predicted: np.ndarray, true: np.ndarray, coverage: float, offset: float
) -> NormalisedBands:
    """Finite-sample conformal quantiles of the normalised scores (see ``NormalisedBands``)."""
    p = np.asarray(predicted, dtype=np.float64)
    score = np.sort((np.asarray(true, dtype=np.float64) - p) / (np.maximum(p, 0.0) + offset))
    n = len(score)
    if n == 0:
        raise ValueError("no calibration points for the interval")
    alpha = 1.0 - coverage
    k_hi = min(n, math.ceil((n + 1) * (1 - alpha / 2)))
    k_lo = max(1, math.floor((n + 1) * (alpha / 2)))
    return NormalisedBands(
        float(offset), min(float(score[k_lo - 1]), 0.0), max(float(score[k_hi - 1]), 0.0), coverage
    )


def bands_from_json(obj: Mapping) -> ConformalBands | NormalisedBands:
    """The interval of a model's meta.json (binned for format-1 models, normalised since)."""
    if obj.get("method") == "normalised":
        return NormalisedBands(float(obj["offset"]), float(obj["low"]), float(obj["high"]), float(obj["coverage"]))
    return ConformalBands.from_json(obj)
