from __future__ import annotations

import math

import numpy as np
import pytest

from edge_node.agent import features

FS = 10_000.0


def sine(amplitude: float, freq: float, n: int = 10_000) -> np.ndarray:
    return amplitude * np.sin(2 * math.pi * freq * np.arange(n) / FS)


@pytest.mark.parametrize("amplitude", [0.5, 3.0, 40.0])
def test_it_gives_a_sine_rms_of_amplitude_over_sqrt2(amplitude):
    x = sine(amplitude, 50.0)
    assert features.rms(x) == pytest.approx(amplitude / math.sqrt(2), rel=1e-6)
    assert features.peak(x) == pytest.approx(amplitude, rel=1e-4)
    assert features.crest_factor(x) == pytest.approx(math.sqrt(2), rel=1e-4)
    assert features.kurtosis(x) == pytest.approx(1.5, rel=1e-3)


def test_it_gives_gaussian_noise_a_kurtosis_near_3_and_impacts_a_high_one():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, 100_000)
    assert features.kurtosis(noise) == pytest.approx(3.0, abs=0.1)
    spiky = noise.copy()
    spiky[::1000] += 30.0
    assert features.kurtosis(spiky) > 10


@pytest.mark.parametrize("freq", [120.0, 2500.0, 4200.0])
def test_it_puts_a_tones_energy_in_the_band_that_holds_it(freq):
    a = 2.0
    bands = {"low": (10.0, 200.0), "mid": (200.0, 1500.0), "bearing": (1500.0, 4500.0)}
    energies = features.band_energies(sine(a, freq), FS, bands)
    expected = a * a / 2  # the mean square of the sine
    hit = next(name for name, (lo, hi) in bands.items() if lo <= freq < hi)
    assert energies[hit] == pytest.approx(expected, rel=1e-3)
    for name, e in energies.items():
        if name != hit:
            assert e < 1e-6 * expected


def test_it_splits_two_tones_between_their_bands_and_sums_to_the_mean_square():
    x = sine(1.0, 60.0) + sine(3.0, 3000.0)
    e = features.band_energies(x, FS, {"shaft": (10.0, 200.0), "bearing": (1500.0, 4500.0), "all": (0.0, FS / 2 + 1)})
    assert e["shaft"] == pytest.approx(0.5, rel=1e-3)
    assert e["bearing"] == pytest.approx(4.5, rel=1e-3)
    assert e["all"] == pytest.approx(float(np.mean(x * x)), rel=1e-9)


def test_it_names_the_motor_metrics_as_the_platform_expects():
    from edge_node.agent.asset_types import ASSET_TYPES

    names = set(features.vibration_features(sine(1.0, 25.0), FS, (1500.0, 4500.0)))
    motor = {m.name for m in ASSET_TYPES["induction_motor"]["metrics"]}
    assert names == {"vib_rms", "vib_peak", "vib_kurtosis", "vib_crest", "vib_band_bearing"}
    assert names <= motor
