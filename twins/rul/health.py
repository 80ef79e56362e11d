"""Health index and degradation rate derived from RUL estimates."""

from __future__ import annotations

import numpy as np


def health_index(rul_median: np.ndarray | float, cap: float) -> np.ndarray:
    """Health in [0, 1]: 1 while the RUL is at the cap (no visible degradation), 0 at failure."""
    return np.clip(np.asarray(rul_median, dtype=np.float64) / cap, 0.0, 1.0)


def degradation_rate(
    health: np.ndarray, rows_back: np.ndarray, valid: np.ndarray | None = None
) -> np.ndarray:
    """Health lost per row, from a least-squares line through recent health values.

    ``health`` is [K, N]: K health values per asset, taken ``rows_back[k]`` rows before the latest
    row. Returns [N]; positive means degrading. Points with ``valid`` False are left out; an asset
    with fewer than two valid points gets 0.
    """
    h = np.asarray(health, dtype=np.float64)
    t = -np.asarray(rows_back, dtype=np.float64)[:, None] * np.ones_like(h)
    w = np.ones_like(h) if valid is None else np.asarray(valid, dtype=np.float64)
    n = w.sum(axis=0)
    safe_n = np.where(n > 0, n, 1.0)
    t_mean = (w * t).sum(axis=0) / safe_n
    h_mean = (w * h).sum(axis=0) / safe_n
    sxx = (w * (t - t_mean) ** 2).sum(axis=0)
    sxy = (w * (t - t_mean) * (h - h_mean)).sum(axis=0)
    slope = np.where((n >= 2) & (sxx > 0), sxy / np.where(sxx > 0, sxx, 1.0), 0.0)
    return -slope
