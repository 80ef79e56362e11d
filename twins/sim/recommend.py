"""When to replace: the age-replacement cost-rate model on the simulated lives.

For a preventive replacement at operating age t of a component with random remaining life T,
one renewal cycle costs Cp if T > t and Cf if T <= t, and lasts min(T, t). The long-run cost
per operating hour is g(t) = (Cp P(T > t) + Cf P(T <= t)) / E[min(T, t)] (Barlow & Proschan);
running to failure costs Cf / E[T]. We evaluate g on quantiles of the simulated lives and
recommend the minimiser if it beats running to failure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twins.sim import const
from twins.sim.schedule import Schedule


def recommend_replacement(
    lives_h: np.ndarray,
    preventive_cost: float,
    failure_cost: float,
    schedule: Schedule,
    horizon_h: float,
) -> dict[str, Any]:
    """Best preventive replacement time for one asset; lives in operating hours from now."""
    lives = np.sort(np.asarray(lives_h, dtype=float))
    n = lives.size
    mean_life = float(lives.mean())
    rtf_rate = float(failure_cost) / mean_life
    probabilities = np.linspace(0.005, 0.995, const.RECOMMENDATION_GRID)
    candidates = np.unique(np.quantile(lives, probabilities))
    failed = np.searchsorted(lives, candidates, side="right")  # lives <= t
    cumulative = np.concatenate(([0.0], np.cumsum(lives)))
    mean_cycle = (cumulative[failed] + candidates * (n - failed)) / n
    risk = failed / n
    rates = (preventive_cost * (1.0 - risk) + failure_cost * risk) / mean_cycle
    best = int(np.argmin(rates))
    base = {
        "preventive_cost": round(float(preventive_cost), 2),
        "failure_cost": round(float(failure_cost), 2),
        "run_to_failure_cost_per_hour": round(rtf_rate, 4),
    }
    if preventive_cost >= failure_cost or rates[best] >= rtf_rate:
        return {
            **base,
            "action": const.POLICY_RUN_TO_FAILURE,
            "operating_hours": None,
            "day": None,
            "within_horizon": False,
            "failure_risk_before": None,
            "cost_per_hour": round(rtf_rate, 4),
            "saving_pct": 0.0,
            "reason": "a planned replacement does not lower the expected cost per operating hour "
            "(failures are not costly enough, or wear-out is too weak)",
        }
    best_t = float(candidates[best])
    calendar_h = schedule.to_calendar(best_t)
    return {
        **base,
        "action": "preventive",
        "operating_hours": round(best_t, 1),
        "day": round(calendar_h / 24.0, 1),
        "within_horizon": bool(calendar_h <= horizon_h),
        "failure_risk_before": round(float(risk[best]), 4),
        "cost_per_hour": round(float(rates[best]), 4),
        "saving_pct": round(float(100.0 * (1.0 - rates[best] / rtf_rate)), 2),
        "reason": f"replacing after {best_t:,.0f} operating hours minimises the expected cost "
        f"per operating hour (age-replacement model)",
    }
