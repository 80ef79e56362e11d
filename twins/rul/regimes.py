"""Operating regimes: clusters of the operational settings, so sensors are standardised per regime.

A fleet that runs at several operating points (altitude, Mach number, throttle for C-MAPSS
FD002/FD004; load or speed set-points elsewhere) shows sensor levels that jump with the regime
far more than they drift with wear. Standardising each row with the mean and standard deviation
of its own regime removes those jumps, so one pipeline serves single- and multi-condition fleets.
The regime of a row is its nearest cluster centre in the (standardised) settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import const


@dataclass(frozen=True)
class Regimes:
    """Cluster centres of the settings (in standardised setting units) and how settings are scaled."""

    signals: tuple[str, ...]  # setting signals, in input order after the model's signals
    centres: np.ndarray  # [K, R] in standardised setting units
    means: np.ndarray  # [R]
    scales: np.ndarray  # [R]

    @property
    def count(self) -> int:
        return len(self.centres)

    def assign(self, settings: np.ndarray) -> np.ndarray:
        """Regime index of every row of ``settings`` [..., R] (same leading shape)."""
        z = (np.asarray(settings, dtype=np.float64) - self.means) / self.scales
        d = ((z[..., None, :] - self.centres) ** 2).sum(axis=-1)
        return np.argmin(d, axis=-1)

    def to_json(self) -> dict:
        return {
            "signals": list(self.signals),
            "centres": self.centres.tolist(),
            "means": self.means.tolist(),
            "scales": self.scales.tolist(),
        }

    @classmethod
    def from_json(cls, obj: dict) -> Regimes:
        return cls(
            tuple(obj["signals"]),
            np.asarray(obj["centres"], dtype=np.float64),
            np.asarray(obj["means"], dtype=np.float64),
            np.asarray(obj["scales"], dtype=np.float64),
        )


def kmeans(x: np.ndarray, k: int, seed: int, iterations: int = 50) -> tuple[np.ndarray, float]:
    """Plain k-means (k-means++ start): (centres [k, D], within-cluster sum of squares)."""
    rng = np.random.default_rng(seed)
    centres = [x[int(rng.integers(len(x)))]]
    for _ in range(1, k):
        d = np.min(((x[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        total = d.sum()
        if total <= 0:
            break
        centres.append(x[int(rng.choice(len(x), p=d / total))])
    c = np.asarray(centres)
    for _ in range(iterations):
        label = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        new = np.array([x[label == j].mean(axis=0) if np.any(label == j) else c[j] for j in range(len(c))])
        if np.allclose(new, c):
            break
        c = new
    label = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
    return c, float(((x - c[label]) ** 2).sum())


def find_regimes(
    settings: np.ndarray, names: tuple[str, ...], seed: int = 0, max_regimes: int = const.MAX_REGIMES,
    sample: int = 5000,
) -> Regimes | None:
    """The operating regimes of the settings [rows, R], or None when there is one regime.

    k = 2..max_regimes is tried on (a sample of) the standardised settings; the smallest k whose
    within-cluster sum of squares is below REGIME_INERTIA_SHARE of the k = 1 figure, and which
    k + 1 clusters do not cut below REGIME_NEXT_SPLIT_SHARE of it, is taken.
    """
    x = np.asarray(settings, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] == 0 or len(x) < 2:
        return None
    means, scales = x.mean(axis=0), x.std(axis=0)
    scales = np.where(scales > 0, scales, 1.0)
    z = (x - means) / scales
    rng = np.random.default_rng(seed)
    fit = z[rng.choice(len(z), sample, replace=False)] if len(z) > sample else z
    total = float(((fit - fit.mean(axis=0)) ** 2).sum())
    if total <= 0:
        return None
    fits = {k: kmeans(fit, k, seed) for k in range(2, max_regimes + 2)}
    for k in range(2, max_regimes + 1):
        centres, inertia = fits[k]
        # tight clusters, and splitting one more does not tighten them much (two close operating
        # points merged into one cluster would still leave a large drop to k + 1)
        if (len(centres) == k and inertia < const.REGIME_INERTIA_SHARE * total
                and fits[k + 1][1] > const.REGIME_NEXT_SPLIT_SHARE * inertia):
            return Regimes(tuple(names), centres, means, scales)
    return None


# The six operating points of C-MAPSS FD002/FD004 (altitude in kft, Mach number, throttle
# resolver angle): the synthetic multi-regime set runs the FD001 engines at them.
FD002_OPERATING_POINTS = np.array([
    [0.0, 0.0, 100.0], [10.0, 0.25, 100.0], [20.0, 0.70, 100.0],
    [25.0, 0.62, 60.0], [35.0, 0.84, 100.0], [42.0, 0.84, 100.0],
])


def synthetic_multi_regime(data, seed: int = 0, shift_sd: float = 8.0):
    """A multi-condition fleet made from single-condition run-to-failure data (e.g. FD001).

    Every row is given one of six operating points at random (as in FD002, where the regime
    changes from cycle to cycle); its settings become that point (plus a little noise) and every
    sensor ``setting_*`` aside is moved to the regime's level: ``x * gain + shift``, with shifts
    of up to ``shift_sd`` of the sensor's standard deviation and gains 0.8..1.2. Wear is
    unchanged, so a pipeline that standardises per regime should score as on the original data.
    """
    from .data import RunToFailureData

    rng = np.random.default_rng(seed)
    settings = [i for i, s in enumerate(data.signals) if s.startswith(const.REGIME_SIGNAL_PREFIX)]
    sensors = [i for i in range(len(data.signals)) if i not in settings]
    if len(settings) != 3:
        raise ValueError("synthetic regimes need three setting_* signals (C-MAPSS layout)")
    k = len(FD002_OPERATING_POINTS)
    regime = rng.integers(k, size=len(data))
    values = data.values.copy()
    values[:, settings] = FD002_OPERATING_POINTS[regime] + rng.normal(0, [0.005, 0.0005, 0.001], (len(data), 3))
    sd = data.values[:, sensors].std(axis=0)
    shift = rng.uniform(-shift_sd, shift_sd, (k, len(sensors))) * sd
    gain = rng.uniform(0.8, 1.2, (k, len(sensors)))
    mean = data.values[:, sensors].mean(axis=0)
    values[:, sensors] = (data.values[:, sensors] - mean) * gain[regime] + mean + shift[regime]
    return RunToFailureData(
        data.units, data.time, values, data.signals,
        f"{data.description}, run at the 6 FD002 operating points (synthetic, seed {seed})",
    )
