"""The asset types the simulated fleet ships, with each metric's unit and valid range.

One definition shared by the edge agent's sensor sources (which emit these metrics) and
the platform's demo loader (which creates the matching AssetType rows). Free of Django.
"""

from __future__ import annotations

from typing import NamedTuple


class MetricSpec(NamedTuple):
    name: str
    unit: str
    min_value: float
    max_value: float
    label: str


# Lives of the simulated components, in operating hours from new to worn out (uniform between
# the two figures), and how long a replacement takes. Orders of magnitude a maintenance planner
# knows: rolling bearings of 55 kW motors 3-5 years of continuous duty, impellers and seals of
# process pumps 2-4 years, refrigeration circuits of air handlers 3-5 years. The demo fleet, the
# simulator's training histories for the RUL models and the README all use these.
LIFE_HOURS: dict[str, tuple[float, float]] = {
    "induction_motor": (24_000.0, 44_000.0),
    "centrifugal_pump": (16_000.0, 32_000.0),
    "hvac_unit": (24_000.0, 44_000.0),
}
REPAIR_HOURS: dict[str, float] = {"induction_motor": 8.0, "centrifugal_pump": 6.0, "hvac_unit": 12.0}

ASSET_TYPES: dict[str, dict] = {
    "induction_motor": {
        "label": "Induction motor",
        "metrics": [
            MetricSpec("current_a", "A", 0.0, 400.0, "Current"),
            MetricSpec("power_kw", "kW", 0.0, 250.0, "Power"),
            MetricSpec("vib_rms", "mm/s", 0.0, 100.0, "Vibration RMS"),
            MetricSpec("vib_peak", "mm/s", 0.0, 400.0, "Vibration peak"),
            MetricSpec("vib_kurtosis", "", 0.0, 100.0, "Vibration kurtosis"),
            MetricSpec("vib_crest", "", 0.0, 50.0, "Vibration crest factor"),
            MetricSpec("vib_band_bearing", "(mm/s)^2", 0.0, 10000.0, "Bearing band energy"),
            MetricSpec("temperature_c", "°C", -40.0, 200.0, "Winding temperature"),
            MetricSpec("acoustic_db", "dB", 0.0, 140.0, "Acoustic level"),
        ],
    },
    "centrifugal_pump": {
        "label": "Centrifugal pump",
        "metrics": [
            MetricSpec("flow_m3h", "m³/h", 0.0, 1000.0, "Flow"),
            MetricSpec("pressure_bar", "bar", 0.0, 60.0, "Discharge pressure"),
            MetricSpec("power_kw", "kW", 0.0, 300.0, "Power"),
            MetricSpec("vib_rms", "mm/s", 0.0, 100.0, "Vibration RMS"),
            MetricSpec("temperature_c", "°C", -40.0, 200.0, "Bearing temperature"),
        ],
    },
    "hvac_unit": {
        "label": "HVAC unit",
        "metrics": [
            MetricSpec("supply_temp_c", "°C", -30.0, 80.0, "Supply temperature"),
            MetricSpec("return_temp_c", "°C", -30.0, 80.0, "Return temperature"),
            MetricSpec("humidity_pct", "%", 0.0, 100.0, "Relative humidity"),
            MetricSpec("co2_ppm", "ppm", 0.0, 10000.0, "CO₂"),
            MetricSpec("occupancy", "people", 0.0, 2000.0, "Occupancy"),
            MetricSpec("energy_kw", "kW", 0.0, 500.0, "Power draw"),
        ],
    },
    "turbofan": {
        # Replayed from C-MAPSS (NASA turbofan run-to-failure data); the ranges are wide
        # enough for all four operating-condition sets FD001..FD004.
        "label": "Turbofan engine",
        "metrics": [
            MetricSpec("cycle", "cycles", 0.0, 1000.0, "Cycle"),
            MetricSpec("s2", "°R", 400.0, 800.0, "LPC outlet temperature (T24)"),
            MetricSpec("s3", "°R", 1000.0, 2000.0, "HPC outlet temperature (T30)"),
            MetricSpec("s4", "°R", 900.0, 1800.0, "LPT outlet temperature (T50)"),
            MetricSpec("s7", "psia", 100.0, 700.0, "HPC outlet pressure (P30)"),
            MetricSpec("s8", "rpm", 1500.0, 3000.0, "Fan speed (Nf)"),
            MetricSpec("s9", "rpm", 7000.0, 10000.0, "Core speed (Nc)"),
            MetricSpec("s11", "psia", 20.0, 70.0, "HPC outlet static pressure (Ps30)"),
            MetricSpec("s12", "pps/psi", 100.0, 700.0, "Fuel flow / Ps30 (phi)"),
            MetricSpec("s13", "rpm", 1500.0, 3000.0, "Corrected fan speed (NRf)"),
            MetricSpec("s14", "rpm", 7000.0, 10000.0, "Corrected core speed (NRc)"),
            MetricSpec("s15", "", 5.0, 15.0, "Bypass ratio (BPR)"),
            MetricSpec("s17", "", 200.0, 500.0, "Bleed enthalpy (htBleed)"),
            MetricSpec("s20", "lbm/s", 5.0, 60.0, "HPT coolant bleed (W31)"),
            MetricSpec("s21", "lbm/s", 3.0, 40.0, "LPT coolant bleed (W32)"),
        ],
    },
}


def metric_words(asset_type: str, metric: str) -> tuple[str, str]:
    """A metric's label and unit as people read them: ('Vibration RMS', ' mm/s')."""
    for m in ASSET_TYPES.get(asset_type, {}).get("metrics", ()):
        if m.name == metric:
            return m.label, f" {m.unit}" if m.unit else ""
    return metric, ""
