"""Centrifugal pump: flow, discharge pressure, power, vibration, bearing temperature.

Impeller wear (erosion) lowers head and flow along the pump curve while the efficiency
drops, so the same duty costs more power and the rotor runs rougher. Cavitation (suction
pressure below NPSH required) makes flow and pressure unsteady, collapses head, and shows
as broadband vibration; it appears in bursts as wear advances and can be injected.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from .. import const
from .base import Sample, Source, clamp_to_spec


class CentrifugalPump(Source):
    asset_type = "centrifugal_pump"
    PARAMS: ClassVar[dict[str, Any]] = {
        "rated_flow_m3h": 220.0,
        "rated_pressure_bar": 6.5,
        "rated_kw": 55.0,
        "ambient_c": 25.0,
        "demand_period_s": 3600.0,
    }
    FAULT_KINDS = ("cavitation", "bearing_overheat", "blockage")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._temp: float | None = None
        self._last_t: float | None = None

    def _sample(self, sim_t: float) -> Sample:
        p = self.params
        wear = self.wear(sim_t)
        demand = 0.8 + 0.12 * math.sin(2 * math.pi * sim_t / float(p["demand_period_s"])) + self.rng.normal(0, 0.01)
        cav_fault = self.active_fault(sim_t, "cavitation")
        # A worn impeller cavitates intermittently once its margin is gone (past half-worn):
        # bursts whose odds grow towards 30% of samples at the end of its life.
        cavitation = cav_fault.magnitude if cav_fault else (0.5 if self.rng.random() < 1.2 * max(0.0, wear - 0.5) ** 2 else 0.0)
        blockage = self.active_fault(sim_t, "blockage")
        flow = float(p["rated_flow_m3h"]) * demand * (1.0 - 0.18 * wear) * (1.0 - 0.35 * cavitation)
        if blockage:
            flow *= max(0.05, 1.0 - 0.8 * blockage.magnitude)
        pressure = float(p["rated_pressure_bar"]) * (1.05 - 0.1 * (flow / float(p["rated_flow_m3h"])) ** 2)
        pressure *= (1.0 - 0.15 * wear) * (1.0 - 0.4 * cavitation)
        if blockage:
            pressure *= 1.0 + 0.3 * blockage.magnitude  # dead-heading: head rises towards shut-off
        efficiency = 0.78 * (1.0 - 0.2 * wear)
        hydraulic_kw = flow / 3600.0 * pressure * 1e5 / 1000.0
        power = hydraulic_kw / efficiency + 0.08 * float(p["rated_kw"])
        vib = 1.4 + 3.5 * wear**1.5 + 6.0 * cavitation + self.rng.normal(0, 0.08 * (1 + 3 * cavitation))
        overheat = self.active_fault(sim_t, "bearing_overheat")
        target = float(p["ambient_c"]) + 18.0 + 30.0 * wear + (55.0 * overheat.magnitude if overheat else 0.0)
        if self._temp is None:
            self._temp = target
        else:
            dt = max(0.0, sim_t - (self._last_t or sim_t))
            tau = 15.0 if overheat else 900.0
            self._temp += (target - self._temp) * (1.0 - math.exp(-dt / tau))
        self._last_t = sim_t
        noise = 1.0 + 4.0 * cavitation
        values = {
            "flow_m3h": flow * (1.0 + self.rng.normal(0, 0.004 * noise)),
            "pressure_bar": pressure * (1.0 + self.rng.normal(0, 0.004 * noise)),
            "power_kw": power * (1.0 + self.rng.normal(0, 0.005 * noise)),
            "vib_rms": vib,
            "temperature_c": self._temp + self.rng.normal(0, 0.15),
        }
        return Sample(sim_t, clamp_to_spec(self.asset_type, values), raw_bytes=const.RAW_BYTES_SLOW * len(values))
