"""One life law per asset: a Weibull life fitted to the twin, used for everything.

The component in place is `age` operating hours old; its remaining life is the Weibull life
conditioned on having survived that age, and every replacement part is a new draw of the same
Weibull. The recommendation, the simulation and the assumptions all read this one law, so a
part's life never depends on whether it is the first or a replacement.

Fitting, at the asset's nominal profile (operating hours):
- the twin's RUL median is always matched exactly (the scale follows from the shape in closed
  form: (a + m)^b = a^b + ln 2 eta^b);
- with a known new-part median life (the life the RUL model was trained on), the shape is solved
  so that a new part also has that median: L^b + a^b = (a + m)^b, bisection in log-shape;
- else with the twin's 80 % interval, the shape is the one whose conditional p10 and p90 are
  nearest (in log) to the interval: continuous in the interval's width; a zero-width interval
  gives the steepest shape, a slightly wider one a slightly less steep one;
- else the asset's own shape (default 1.5, the ISO 281 dispersion slope).
A Weibull part of a known age cannot have any residual interval: the law's own p10/p90 are
stated beside the twin's in the assumptions, the median always agrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from twins.sim import const
from twins.sim.scenario import AssetInit

LN2 = math.log(2.0)


@dataclass(frozen=True)
class LifeLaw:
    """Weibull(shape, scale) life of a new part; the part in place is `age` hours old."""

    shape: float
    scale: float
    age: float
    source: str  # how the shape was chosen: "new_life", "interval", "asset_shape"

    def residual_quantile(self, p: float | np.ndarray) -> float | np.ndarray:
        """Remaining life of the part in place with probability p of failing before it."""
        b, eta, a = self.shape, self.scale, self.age
        e = -np.log1p(-np.asarray(p, dtype=float))
        # (a^b + e eta^b)^(1/b) - a, computed relative to eta to stay finite for steep shapes
        x = a / eta
        out = eta * ((x**b + e) ** (1.0 / b) - x)
        return float(out) if np.ndim(out) == 0 else out

    def new_quantile(self, p: float | np.ndarray) -> float | np.ndarray:
        e = -np.log1p(-np.asarray(p, dtype=float))
        out = self.scale * e ** (1.0 / self.shape)
        return float(out) if np.ndim(out) == 0 else out

    @property
    def new_median(self) -> float:
        return self.scale * LN2 ** (1.0 / self.shape)

    @property
    def residual_median(self) -> float:
        return float(self.residual_quantile(0.5))

    @property
    def new_mean(self) -> float:
        return self.scale * math.gamma(1.0 + 1.0 / self.shape)

    def at_stress(self, acceleration: float) -> LifeLaw:
        """The same law when wear runs `acceleration` times faster (ages scale alike)."""
        return LifeLaw(self.shape, self.scale / acceleration, self.age / acceleration, self.source)


def _scale_for_median(shape: float, age: float, median: float) -> float:
    """eta such that the residual median at `age` is `median`: (a+m)^b = a^b + ln2 eta^b."""
    x = age / (age + median)  # in [0, 1)
    return (age + median) * ((1.0 - x**shape) / LN2) ** (1.0 / shape)


def _relative_quantile(shape: np.ndarray, x: float, p: float) -> np.ndarray:
    """Residual p-quantile / (a + m) for shape(s) b, x = a / (a + m), median matched."""
    c = -math.log1p(-p) / LN2
    xb = x**shape
    return (xb + c * (1.0 - xb)) ** (1.0 / shape) - x


def _shape_for_new_life(age: float, median: float, new_median: float) -> float:
    """Shape b with (L/(a+m))^b + (a/(a+m))^b = 1; clipped to the fitting range."""
    low, high = (math.log(v) for v in const.LIFE_FIT_SHAPE_RANGE)
    u, x = new_median / (age + median), age / (age + median)

    def f(log_b: float) -> float:
        b = math.exp(log_b)
        return u**b + x**b - 1.0

    f_low, f_high = f(low), f(high)
    if f_low * f_high > 0.0:  # no root in range: the nearer end
        return math.exp(low if abs(f_low) < abs(f_high) else high)
    for _ in range(60):
        mid = 0.5 * (low + high)
        if f(mid) * f_low > 0.0:
            low, f_low = mid, f(mid)
        else:
            high = mid
    return math.exp(0.5 * (low + high))


def _shape_for_interval(age: float, median: float, p10: float, p90: float) -> float:
    """Shape whose conditional p10/p90 are nearest in log to the interval's (median exact)."""
    lo, hi = (math.log(v) for v in const.LIFE_FIT_SHAPE_RANGE)
    total = age + median
    x = age / total
    target = np.array([math.log(p10 / total), math.log(p90 / total)])

    def loss(log_b: np.ndarray) -> np.ndarray:
        b = np.exp(log_b)
        q10 = np.maximum(_relative_quantile(b, x, 0.1), 1e-300)
        q90 = _relative_quantile(b, x, 0.9)
        return (np.log(q10) - target[0]) ** 2 + (np.log(q90) - target[1]) ** 2

    grid = np.linspace(lo, hi, 241)
    best = int(np.argmin(loss(grid)))
    a, b = grid[max(0, best - 1)], grid[min(grid.size - 1, best + 1)]
    for _ in range(50):  # golden section inside the bracket around the grid's best
        if b - a < 1e-9:
            break
        c1, c2 = a + 0.382 * (b - a), a + 0.618 * (b - a)
        if loss(np.array([c1]))[0] <= loss(np.array([c2]))[0]:
            b = c2
        else:
            a = c1
    return float(math.exp(0.5 * (a + b)))


@lru_cache(maxsize=4096)
def fit_life_law(asset: AssetInit) -> LifeLaw:
    """The asset's Weibull law at its nominal profile; see the module docstring. Cached: an
    AssetInit is frozen, and a scenario's chunks, merge and check fit the same assets."""
    if asset.rul is not None:
        median = asset.rul.median
        rate = asset.rate if asset.rate is not None else asset.health / median
    else:
        assert asset.rate is not None  # validate_scenario guarantees rate or rul
        rate = asset.rate
        median = asset.health / rate
    age = asset.age_hours if asset.age_hours is not None else (1.0 - asset.health) / rate
    age = max(0.0, float(age))
    rul = asset.rul
    if asset.new_life_hours is not None and age > 0.0:
        shape, source = _shape_for_new_life(age, median, asset.new_life_hours), "new_life"
    elif rul is not None and rul.low is not None and rul.high is not None:
        if rul.high > rul.low:
            shape = _shape_for_interval(age, median, rul.low, rul.high)
        else:  # no spread at all: the steepest shape, the limit of a narrowing interval
            shape = const.LIFE_FIT_SHAPE_RANGE[1]
        source = "interval"
    else:
        shape, source = asset.weibull_shape, "asset_shape"
    return LifeLaw(shape, _scale_for_median(shape, age, median), age, source)
