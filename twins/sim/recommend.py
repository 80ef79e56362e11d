"""When to replace: the age-replacement cost rate on the asset's own life law.

For a new part with life T (the asset's Weibull law at the scenario's stress, lifelaw.py) and
a preventive replacement at operating age t, one renewal cycle costs Cp if T > t and Cf if
T <= t, and lasts min(T, t) operating hours. The long-run cost per operating hour is
g(t) = (Cp R(t) + Cf F(t)) / integral_0^t R(s) ds (Barlow & Proschan); running to failure costs
Cf / E[T]. Cp and Cf are what the simulation charges per event (costs.py). The part in place is
replaced when it reaches the same age t (now, if it is older). The quoted figures are then
checked by the engine's own simulation of that policy (check.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twins.sim import const
from twins.sim.lifelaw import LifeLaw
from twins.sim.schedule import Schedule


def age_replacement_rates(
    law: LifeLaw, preventive_cost: float, failure_cost: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Replacement ages t, the long-run cost rate g(t) at each, and run to failure's rate."""
    upper = float(law.new_quantile(0.9995))
    t = np.linspace(0.0, upper, const.RECOMMENDATION_GRID + 1)
    survival = np.exp(-((t / law.scale) ** law.shape))
    # integral of R from 0 to t (trapezoid on a fine grid; R is smooth)
    fine = np.linspace(0.0, upper, 20 * const.RECOMMENDATION_GRID + 1)
    fine_r = np.exp(-((fine / law.scale) ** law.shape))
    cumulative = np.concatenate(
        ([0.0], np.cumsum(0.5 * (fine_r[1:] + fine_r[:-1]) * np.diff(fine)))
    )
    uptime = np.interp(t, fine, cumulative)
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = (preventive_cost * survival + failure_cost * (1.0 - survival)) / uptime
    rates[0] = np.inf
    return t, rates, failure_cost / law.new_mean


def recommend_replacement(
    law: LifeLaw,
    preventive_cost: float,
    failure_cost: float,
    schedule: Schedule,
    horizon_h: float,
) -> dict[str, Any]:
    """Best preventive replacement age for one asset (operating hours at the scenario's stress)."""
    t, rates, rtf_rate = age_replacement_rates(law, preventive_cost, failure_cost)
    best = int(np.argmin(rates))
    base = {
        "preventive_cost": round(float(preventive_cost), 2),
        "failure_cost": round(float(failure_cost), 2),
        "theory_run_to_failure_cost_per_hour": round(rtf_rate, 4),
    }
    if preventive_cost >= failure_cost or rates[best] >= rtf_rate * (1.0 - 1e-3):
        return {
            **base,
            "action": const.POLICY_RUN_TO_FAILURE,
            "interval_hours": None,
            "operating_hours": None,
            "day": None,
            "within_horizon": False,
            "failure_risk_before": None,
            "theory_cost_per_hour": round(rtf_rate, 4),
            "theory_saving_pct": 0.0,
            "reason": "a planned replacement does not lower the expected cost per operating hour "
            "(failures are not costly enough, or wear-out is too weak)",
        }
    best_t = float(t[best])
    risk = 1.0 - float(np.exp(-((best_t / law.scale) ** law.shape)))
    until = max(0.0, best_t - law.age)  # the part in place reaches that age
    calendar_h = schedule.to_calendar(until)
    return {
        **base,
        "action": "preventive",
        "interval_hours": round(best_t, 1),
        "operating_hours": round(until, 1),
        "day": round(calendar_h / 24.0, 1),
        "within_horizon": bool(calendar_h <= horizon_h),
        "failure_risk_before": round(risk, 4),
        "theory_cost_per_hour": round(float(rates[best]), 4),
        "theory_saving_pct": round(float(100.0 * (1.0 - rates[best] / rtf_rate)), 2),
        "reason": f"replacing every part at {best_t:,.0f} operating hours of age minimises the "
        f"long-run cost per operating hour (age-replacement model on the asset's life law)",
    }
