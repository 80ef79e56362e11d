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

    k = 1..max_regimes is tried on (a sample of) the standardised settings; the smallest k whose
    within-cluster sum of squares is below REGIME_INERTIA_SHARE of the k = 1 figure is taken.
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
    for k in range(2, max_regimes + 1):
        centres, inertia = kmeans(fit, k, seed)
        if len(centres) == k and inertia < const.REGIME_INERTIA_SHARE * total:
            return Regimes(tuple(names), centres, means, scales)
    return None
