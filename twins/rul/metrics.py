"""Error measures of RUL predictions."""

from __future__ import annotations

import numpy as np

from .const import PHM_EARLY_DIVISOR, PHM_LATE_DIVISOR


def rmse(predicted: np.ndarray, true: np.ndarray) -> float:
    d = np.asarray(predicted, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sqrt(np.mean(d * d)))


def phm_score(predicted: np.ndarray, true: np.ndarray) -> float:
    """PHM08 score, summed: d = predicted - true; late predictions (d >= 0) cost more."""
    d = np.asarray(predicted, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    # On rows far finer than engine cycles (minutes) the exponent overflows: inf is the honest
    # figure there (the registry stores it as None, "defined on cycles").
    with np.errstate(over="ignore"):
        return float(
            np.sum(
                np.where(
                    d < 0, np.expm1(-d / PHM_EARLY_DIVISOR), np.expm1(d / PHM_LATE_DIVISOR)
                )
            )
        )


def coverage(low: np.ndarray, high: np.ndarray, true: np.ndarray) -> float:
    """Share of true values inside [low, high]."""
    t = np.asarray(true, dtype=np.float64)
    return float(np.mean((np.asarray(low) <= t) & (t <= np.asarray(high))))


def summarise(
    predicted: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    true: np.ndarray,
    engines: int,
) -> dict:
    return {
        "rmse": round(rmse(predicted, true), 4),
        "phm_score": round(phm_score(predicted, true), 4),
        "coverage80": round(coverage(low, high, true), 4),
        "engines": int(engines),
        "interval_width_mean": round(float(np.mean(np.asarray(high) - np.asarray(low))), 4),
    }
