"""Induction motor: electrical load, 10 kHz vibration waveform, temperature, noise.

The vibration velocity (mm/s) of one window is synthesised from the shaft 1x and 2x
harmonics, the 2x line-frequency magnetic hum, broadband noise, and the impacts of a
rolling element passing an outer-race defect (at BPFO). Each impact rings the housing's
structural resonance (a few kHz), so bearing wear shows first as high kurtosis and crest
factor and as energy in the bearing band, then as RMS and temperature.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from .. import const
from ..features import vibration_features
from .base import Sample, Source, clamp_to_spec


class InductionMotor(Source):
    asset_type = "induction_motor"
    PARAMS: ClassVar[dict[str, Any]] = {
        "rated_kw": 55.0,
        "voltage_v": 400.0,
        "power_factor": 0.85,
        "efficiency": 0.93,
        "rpm": 1480.0,
        "load": 0.75,  # fraction of rated power
        "ambient_c": 25.0,
        "sample_rate_hz": const.VIB_SAMPLE_RATE_HZ,
        "window_s": const.VIB_WINDOW_S,
        "resonance_hz": 3000.0,
        "bpfo_ratio": 3.58,  # outer-race defect frequency / shaft frequency
    }
    FAULT_KINDS = ("bearing_impact", "imbalance", "overheat")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        p = self.params
        self.fs = float(p["sample_rate_hz"])
        self.n = round(self.fs * float(p["window_s"]))
        if self.n < 64:
            raise ValueError(f"window of {self.n} samples is too short (sample_rate_hz x window_s >= 64)")
        self.shaft_hz = float(p["rpm"]) / 60.0
        self._t = np.arange(self.n) / self.fs
        kt = np.arange(int(0.008 * self.fs)) / self.fs  # 8 ms of ringing per impact
        self._kernel = np.exp(-kt / 0.0012) * np.sin(2 * math.pi * float(p["resonance_hz"]) * kt)
        self._kernel_taps = np.arange(len(self._kernel))
        self._tones: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        self._temp: float | None = None
        self._last_t: float | None = None
        self._phase = self.rng.uniform(0, 2 * math.pi)

    def _load(self, sim_t: float) -> float:
        # Process demand: a slow swing plus a little jitter.
        base = float(self.params["load"])
        return max(0.05, base * (1.0 + 0.06 * math.sin(2 * math.pi * sim_t / 5400.0)) + self.rng.normal(0, 0.01))

    def waveform(self, sim_t: float, wear: float, load: float) -> np.ndarray:
        fr = self.shaft_hz
        imbalance = self.active_fault(sim_t, "imbalance")
        a1 = 1.1 * (0.8 + 0.3 * load) * (1.0 + 0.6 * wear) + (4.0 * imbalance.magnitude if imbalance else 0.0)
        # A window starts at no particular shaft angle (the gateway's clock is not the shaft's):
        # without this offset, windows taken at round times would beat with the rotation.
        t0 = sim_t + self.rng.uniform(0.0, 1.0 / fr)
        x = self._tone(fr, t0, a1, self._phase)
        x += self._tone(2 * fr, t0, 0.35, 0.7)
        x += self._tone(100.0, t0, 0.15, 0.0)
        x += self.rng.normal(0.0, 0.2 * (1.0 + 2.5 * wear), self.n)
        impact_fault = self.active_fault(sim_t, "bearing_impact")
        impact_amp = 0.02 + 30.0 * wear**1.5 + (45.0 * impact_fault.magnitude if impact_fault else 0.0)
        period = 1.0 / (float(self.params["bpfo_ratio"]) * fr)
        start = self.rng.uniform(0, period)
        times = np.arange(start, self.n / self.fs, period)
        times = times + self.rng.normal(0, 0.01 * period, len(times))  # rolling elements slip
        idx = np.clip((times * self.fs).astype(int), 0, self.n - 1)
        amps = impact_amp * self.rng.uniform(0.7, 1.3, len(idx))
        # Each impact rings the resonance from its sample on (the impulse train convolved with
        # the ringing, summed only where it is not zero), cut at the window's end.
        at = idx[:, None] + self._kernel_taps[None, :]
        ringing = amps[:, None] * self._kernel[None, :]
        inside = at < self.n
        x += np.bincount(at[inside], weights=ringing[inside], minlength=self.n)
        return x

    def _tone(self, freq_hz: float, t0: float, amplitude: float, phase: float) -> np.ndarray:
        """amplitude * sin(2 pi f (t0 + t) + phase) over the window, by the angle-sum rule from
        the window's own cos/sin table (the angle at t0 reduced in one turn first: t0 is large)."""
        table = self._tones.get(freq_hz)
        if table is None:
            angle = 2 * math.pi * freq_hz * self._t
            table = self._tones[freq_hz] = (np.cos(angle), np.sin(angle))
        start = 2 * math.pi * math.fmod(freq_hz * t0, 1.0) + phase
        cos_t, sin_t = table
        return (amplitude * math.sin(start)) * cos_t + (amplitude * math.cos(start)) * sin_t

    def _sample(self, sim_t: float) -> Sample:
        p = self.params
        wear = self.wear(sim_t)
        load = self._load(sim_t)
        x = self.waveform(sim_t, wear, load)
        feats = vibration_features(x, self.fs, const.BAND_BEARING_HZ)
        # Friction of a worn bearing costs power and heats the motor.
        power_kw = float(p["rated_kw"]) * load / float(p["efficiency"]) * (1.0 + 0.04 * wear)
        current_a = power_kw * 1000.0 / (math.sqrt(3) * float(p["voltage_v"]) * float(p["power_factor"]))
        overheat = self.active_fault(sim_t, "overheat")
        target = float(p["ambient_c"]) + 55.0 * load**2 + 40.0 * wear + (60.0 * overheat.magnitude if overheat else 0.0)
        if self._temp is None:
            self._temp = target
        else:
            dt = max(0.0, sim_t - (self._last_t or sim_t))
            # Thermal time constant of ~10 min; an overheat fault (cooling lost) acts fast.
            tau = 20.0 if overheat else 600.0
            self._temp += (target - self._temp) * (1.0 - math.exp(-dt / tau))
        self._last_t = sim_t
        values = {
            "current_a": current_a * (1.0 + self.rng.normal(0, 0.005)),
            "power_kw": power_kw * (1.0 + self.rng.normal(0, 0.005)),
            **feats,
            "temperature_c": self._temp + self.rng.normal(0, 0.15),
            "acoustic_db": 72.0 + 6.0 * load + 10.0 * math.log10(1.0 + feats["vib_rms"]) + self.rng.normal(0, 0.3),
        }
        return Sample(sim_t, clamp_to_spec(self.asset_type, values), raw={"vibration": x}, raw_bytes=self.n * const.RAW_BYTES_HIGH_RATE + 4 * const.RAW_BYTES_SLOW)
