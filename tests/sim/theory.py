"""Closed forms of maintenance theory the engine is checked against (tests/sim/test_theory.py).

Plain numerics, independent of the engine: a discretised renewal equation, the age-replacement
optimum by bisection on its first-order condition, Takacs' finite-source M/G/1 queue, Palm's
theorem (M/G/inf) for the backorders of a base-stock spare pool.
"""

from __future__ import annotations

import math

import numpy as np


def weibull_cdf(t: np.ndarray, shape: float, scale: float) -> np.ndarray:
    return 1.0 - np.exp(-((np.asarray(t, dtype=float) / scale) ** shape))


def renewal_reward(cycle_cdf: np.ndarray, reward_by: np.ndarray) -> np.ndarray:
    """E[reward of the cycles ended by t] on a grid t_i = i dt, starting with a renewal at 0.

    cycle_cdf[i] = P(cycle length <= t_i); reward_by[i] = E[reward of one cycle; its length
    <= t_i]. Solves E[C(t)] = h(t) + integral_0^t E[C(t - u)] dG(u) (Riemann-Stieltjes)."""
    dg = np.diff(cycle_cdf, prepend=0.0)
    out = np.zeros_like(reward_by)
    for i in range(out.size):
        # renewals at grid midpoints: cycles ending in (t_{j-1}, t_j] restart at t_j
        out[i] = reward_by[i] + np.dot(dg[1 : i + 1], out[i - 1 :: -1][:i])
    return out


def renewal_function(shape: float, scale: float, horizon: float, steps: int = 6000) -> float:
    """M(t): expected failures of a part run to failure and renewed at once, Weibull lives."""
    t = np.linspace(0.0, horizon, steps + 1)
    cdf = weibull_cdf(t, shape, scale)
    return float(renewal_reward(cdf, cdf)[-1])


def age_replacement_expected_cost(
    shape: float, scale: float, age: float, cp: float, cf: float, horizon: float, steps: int = 6000
) -> float:
    """E[cost by t] replacing at `age` (Cp) or at failure (Cf), new part at 0, instant jobs."""
    t = np.linspace(0.0, horizon, steps + 1)
    f = weibull_cdf(np.minimum(t, age), shape, scale)
    survive = 1.0 - float(weibull_cdf(age, shape, scale))
    cycle_cdf = np.where(t >= age, 1.0, f)
    reward = cf * f + np.where(t >= age, cp * survive, 0.0)
    return float(renewal_reward(cycle_cdf, reward)[-1])


def age_replacement_rate(shape: float, scale: float, age: float, cp: float, cf: float) -> float:
    """g(T) = (Cp R(T) + Cf F(T)) / integral_0^T R (fine trapezoid)."""
    s = np.linspace(0.0, age, 20_001)
    r = np.exp(-((s / scale) ** shape))
    uptime = float(np.sum(0.5 * (r[1:] + r[:-1]) * np.diff(s)))
    f = 1.0 - r[-1]
    return (cp * (1.0 - f) + cf * f) / uptime


def optimal_age(shape: float, scale: float, cp: float, cf: float) -> float:
    """T* of the age-replacement model: h(T) integral_0^T R - F(T) = Cp / (Cf - Cp)."""

    def condition(age: float) -> float:
        s = np.linspace(0.0, age, 20_001)
        r = np.exp(-((s / scale) ** shape))
        uptime = float(np.sum(0.5 * (r[1:] + r[:-1]) * np.diff(s)))
        hazard = shape / scale * (age / scale) ** (shape - 1.0)
        return hazard * uptime - (1.0 - r[-1]) - cp / (cf - cp)

    low, high = 1e-6 * scale, 10.0 * scale
    for _ in range(80):
        mid = 0.5 * (low + high)
        if condition(mid) > 0.0:
            high = mid
        else:
            low = mid
    return 0.5 * (low + high)


def lognormal_lst(s: float, median: float, sigma: float, nodes: int = 80) -> float:
    """E[exp(-s S)] of a lognormal S (Gauss-Hermite)."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    return float(np.sum(w * np.exp(-s * median * np.exp(sigma * x))) / math.sqrt(2.0 * math.pi))


def machine_repairman(machines: int, failure_rate: float, median: float, sigma: float) -> dict[str, float]:
    """Finite-source M/G/1 (Takacs): one crew, `machines` with exponential lives, lognormal
    repairs. Crew utilisation, mean machines down, mean wait before repair."""
    mean = median * math.exp(0.5 * sigma**2)
    total, product = 0.0, 1.0
    for k in range(machines):
        if k:
            b = lognormal_lst(k * failure_rate, median, sigma)
            product *= (1.0 - b) / b
        total += math.comb(machines - 1, k) * product
    idle = 1.0 / (1.0 + machines * failure_rate * mean * total)
    throughput = (1.0 - idle) / mean
    down = machines - throughput / failure_rate
    return {
        "utilisation": 1.0 - idle,
        "down": down,
        "wait": down / throughput - mean,
        "throughput": throughput,
    }


def poisson_backorders(mean: float, stock: int) -> float:
    """E[(X - S)+] for X ~ Poisson(mean): mean - S + sum_{x < S} (S - x) P(X = x)."""
    p, below = math.exp(-mean), 0.0
    for x in range(stock):
        below += (stock - x) * p
        p *= mean / (x + 1)
    return mean - stock + below


def base_stock_backorders(rate: float, lead: float, stock: int, horizon: float, steps: int = 400) -> float:
    """Time-average expected backorders over [0, horizon] of a base-stock pool (S spares,
    one-for-one reorders back after `lead`, Poisson demand at `rate`), full at 0.

    Palm's theorem: the parts on order at t are Poisson(rate * min(t, lead)) (every demand of
    the last `lead` hours, the infinite-server M/G/inf queue), so backorders are (X - S)+;
    the first `lead` hours fill the pipeline from empty."""
    t = np.linspace(0.0, lead, steps + 1)
    filling = np.array([poisson_backorders(rate * u, stock) for u in t])
    ramp = float(np.sum(0.5 * (filling[1:] + filling[:-1]) * np.diff(t)))
    return (ramp + (horizon - lead) * poisson_backorders(rate * lead, stock)) / horizon
