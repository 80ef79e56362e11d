"""HVAC unit (air handler with a DX cooling coil) serving an office zone.

Occupancy follows a working day (arrival ramp, lunch dip, departure); CO2 and return air
temperature follow the occupants with first-order dynamics; the unit holds a supply
setpoint and its power follows the cooling load divided by the COP. Degradation (refrigerant
leak, fouled coil) lowers the COP: power rises and the supply temperature drifts off its
setpoint. A compressor trip sends the supply temperature towards return temperature.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from .. import const
from .base import Sample, Source, clamp_to_spec


def occupancy_profile(hour: float) -> float:
    """Fraction of capacity present at this hour of a working day."""
    if hour < 7.0 or hour >= 20.0:
        return 0.0
    if hour < 9.0:
        return (hour - 7.0) / 2.0
    if 12.0 <= hour < 13.5:
        return 0.6
    if hour < 17.0:
        return 1.0
    return max(0.0, 1.0 - (hour - 17.0) / 3.0)


class HvacUnit(Source):
    asset_type = "hvac_unit"
    PARAMS: ClassVar[dict[str, Any]] = {
        "capacity_people": 120.0,
        "start_hour": 8.0,  # local hour of day at sim time 0
        "supply_setpoint_c": 13.0,
        "outdoor_c": 30.0,
        "nominal_cop": 3.2,
        "fan_kw": 4.0,
    }
    FAULT_KINDS = ("compressor_trip", "fan_failure", "co2_sensor_spike")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._co2 = 430.0
        self._ret = 22.0
        self._last_t: float | None = None

    def _sample(self, sim_t: float) -> Sample:
        p = self.params
        wear = self.wear(sim_t)
        hour = (float(p["start_hour"]) + sim_t / 3600.0) % 24.0
        cap = float(p["capacity_people"])
        occ = max(0.0, cap * occupancy_profile(hour) + self.rng.normal(0, 0.02 * cap) * (occupancy_profile(hour) > 0))
        occ = float(round(occ))
        dt = 0.0 if self._last_t is None else max(0.0, sim_t - self._last_t)
        self._last_t = sim_t
        fan_fault = self.active_fault(sim_t, "fan_failure")
        ventilation = 0.1 if fan_fault else 1.0
        # Steady-state CO2 with ~1000 ppm at full occupancy and full fresh-air flow.
        co2_target = 420.0 + 600.0 * occ / cap / ventilation
        trip = self.active_fault(sim_t, "compressor_trip")
        cooling = 0.0 if (trip or fan_fault) else 1.0
        outdoor = float(p["outdoor_c"]) + 4.0 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)
        ret_target = 21.5 + 2.5 * occ / cap + (outdoor - 21.5) * (0.35 if cooling == 0.0 else 0.05)
        a = 1.0 - math.exp(-dt / 600.0) if dt else 1.0
        self._co2 += (co2_target - self._co2) * a
        self._ret += (ret_target - self._ret) * (1.0 - math.exp(-dt / (300.0 if cooling else 120.0)) if dt else 1.0)
        # A weakened refrigeration circuit cannot reach the setpoint.
        supply = float(p["supply_setpoint_c"]) + 6.0 * wear**2
        if cooling == 0.0:
            supply = self._ret - 1.0
        cop = float(p["nominal_cop"]) * (1.0 - 0.45 * wear)
        load_kw = 8.0 + 0.12 * occ + 0.9 * max(0.0, outdoor - 20.0)
        energy = float(p["fan_kw"]) * (0.2 if fan_fault else 1.0) + cooling * load_kw / cop
        humidity = 42.0 + 10.0 * occ / cap + (12.0 if cooling == 0.0 else 0.0)
        co2 = self._co2
        spike = self.active_fault(sim_t, "co2_sensor_spike")
        if spike:
            co2 += 3000.0 * spike.magnitude
        values = {
            "supply_temp_c": supply + self.rng.normal(0, 0.1),
            "return_temp_c": self._ret + self.rng.normal(0, 0.1),
            "humidity_pct": humidity + self.rng.normal(0, 0.4),
            "co2_ppm": co2 + self.rng.normal(0, 5.0),
            "occupancy": occ,
            "energy_kw": energy * (1.0 + self.rng.normal(0, 0.01)),
        }
        return Sample(sim_t, clamp_to_spec(self.asset_type, values), raw_bytes=const.RAW_BYTES_SLOW * len(values))
