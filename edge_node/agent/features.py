"""Windowed features of high-rate signals (numpy only, runs on the gateway)."""

from __future__ import annotations

import numpy as np


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def peak(x: np.ndarray) -> float:
    return float(np.max(np.abs(x)))


def kurtosis(x: np.ndarray) -> float:
    """Pearson kurtosis (3 for Gaussian noise, 1.5 for a sine); impacts drive it up."""
    centred = x - np.mean(x)
    squared = centred * centred  # (a float power would cost as much again as the rest)
    var = float(np.mean(squared))
    if var <= 0.0:
        return 0.0
    return float(np.mean(squared * squared) / (var * var))


def crest_factor(x: np.ndarray) -> float:
    r = rms(x)
    return peak(x) / r if r > 0.0 else 0.0


def power_spectrum(x: np.ndarray, sample_rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided power per FFT bin, scaled so the bins sum to the mean square of ``x``
    (Parseval): a band's sum is then that band's share of RMS², in the signal's unit squared."""
    n = len(x)
    spec = np.fft.rfft(x)
    power = (spec.real**2 + spec.imag**2) / (n * n)
    # Every bin but DC (and Nyquist for even n) stands for a positive and a negative frequency.
    if n % 2 == 0:
        power[1:-1] *= 2.0
    else:
        power[1:] *= 2.0
    freqs = np.fft.rfftfreq(n, d=1.0 / sample_rate_hz)
    return freqs, power


def band_energies(
    x: np.ndarray, sample_rate_hz: float, bands: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """Energy (mean-square contribution) of ``x`` in each [low, high) frequency band."""
    freqs, power = power_spectrum(x, sample_rate_hz)
    return {name: float(power[(freqs >= lo) & (freqs < hi)].sum()) for name, (lo, hi) in bands.items()}


def vibration_features(
    x: np.ndarray, sample_rate_hz: float, bearing_band: tuple[float, float]
) -> dict[str, float]:
    """The motor's vibration metrics for one window (names as in asset_types)."""
    r = rms(x)
    p = peak(x)
    return {
        "vib_rms": r,
        "vib_peak": p,
        "vib_kurtosis": kurtosis(x),
        "vib_crest": p / r if r > 0.0 else 0.0,
        "vib_band_bearing": band_energies(x, sample_rate_hz, {"b": bearing_band})["b"],
    }
