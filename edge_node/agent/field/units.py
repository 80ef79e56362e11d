"""Units a device may report in, and how to convert them to the unit of the platform's metric.

Each unit is a linear map to its family's base unit: ``base = value * factor + offset``. Two
units convert when they belong to the same family. Names are what people write in point maps
(and what ``discover`` prints for BACnet's engineering units); aliases map to one spelling.
"""

from __future__ import annotations

# unit -> (family, factor, offset) towards the family's base unit
UNITS: dict[str, tuple[str, float, float]] = {
    # temperature (base: °C)
    "°C": ("temperature", 1.0, 0.0),
    "°F": ("temperature", 5.0 / 9.0, -160.0 / 9.0),
    "K": ("temperature", 1.0, -273.15),
    # power (base: W)
    "W": ("power", 1.0, 0.0),
    "kW": ("power", 1e3, 0.0),
    "MW": ("power", 1e6, 0.0),
    "hp": ("power", 745.699872, 0.0),
    # energy (base: Wh)
    "Wh": ("energy", 1.0, 0.0),
    "kWh": ("energy", 1e3, 0.0),
    "MWh": ("energy", 1e6, 0.0),
    "kJ": ("energy", 1.0 / 3.6, 0.0),
    "MJ": ("energy", 1e3 / 3.6, 0.0),
    # pressure (base: Pa)
    "Pa": ("pressure", 1.0, 0.0),
    "hPa": ("pressure", 100.0, 0.0),
    "kPa": ("pressure", 1e3, 0.0),
    "MPa": ("pressure", 1e6, 0.0),
    "mbar": ("pressure", 100.0, 0.0),
    "bar": ("pressure", 1e5, 0.0),
    "psi": ("pressure", 6894.757293168, 0.0),
    "inH2O": ("pressure", 249.08891, 0.0),
    # volume flow (base: m³/h)
    "m³/h": ("flow", 1.0, 0.0),
    "m³/s": ("flow", 3600.0, 0.0),
    "l/s": ("flow", 3.6, 0.0),
    "l/min": ("flow", 0.06, 0.0),
    "l/h": ("flow", 0.001, 0.0),
    "gpm": ("flow", 0.227124707, 0.0),
    "cfm": ("flow", 1.699010796, 0.0),
    # electric current (base: A)
    "A": ("current", 1.0, 0.0),
    "mA": ("current", 1e-3, 0.0),
    "kA": ("current", 1e3, 0.0),
    # voltage (base: V)
    "V": ("voltage", 1.0, 0.0),
    "mV": ("voltage", 1e-3, 0.0),
    "kV": ("voltage", 1e3, 0.0),
    # frequency (base: Hz)
    "Hz": ("frequency", 1.0, 0.0),
    "kHz": ("frequency", 1e3, 0.0),
    # rotational speed (base: rpm)
    "rpm": ("speed", 1.0, 0.0),
    "rps": ("speed", 60.0, 0.0),
    # vibration velocity (base: mm/s)
    "mm/s": ("velocity", 1.0, 0.0),
    "m/s": ("velocity", 1e3, 0.0),
    "in/s": ("velocity", 25.4, 0.0),
    # ratios
    "%": ("ratio", 1.0, 0.0),
    "ppm": ("concentration", 1.0, 0.0),
    # apparent / reactive power (kept apart from real power on purpose)
    "VA": ("apparent_power", 1.0, 0.0),
    "kVA": ("apparent_power", 1e3, 0.0),
    "var": ("reactive_power", 1.0, 0.0),
    "kvar": ("reactive_power", 1e3, 0.0),
    "s": ("time", 1.0, 0.0),
    "min": ("time", 60.0, 0.0),
    "h": ("time", 3600.0, 0.0),
}

ALIASES: dict[str, str] = {
    "C": "°C", "degC": "°C", "deg C": "°C", "celsius": "°C",
    "F": "°F", "degF": "°F", "deg F": "°F", "fahrenheit": "°F",
    "kelvin": "K",
    "m3/h": "m³/h", "m3/s": "m³/s", "L/s": "l/s", "L/min": "l/min", "L/h": "l/h",
    "RPM": "rpm", "1/min": "rpm",
    "kVAr": "kvar", "kVAR": "kvar", "VAr": "var", "VAR": "var",
    "percent": "%", "pct": "%",
}

# BACnet engineering units (as bacpypes3 names them) -> our unit names, for discover and maps.
BACNET_UNITS: dict[str, str] = {
    "degrees-celsius": "°C", "degrees-fahrenheit": "°F", "degrees-kelvin": "K",
    "watts": "W", "kilowatts": "kW", "megawatts": "MW", "horsepower": "hp",
    "watt-hours": "Wh", "kilowatt-hours": "kWh", "megawatt-hours": "MWh",
    "pascals": "Pa", "kilopascals": "kPa", "bars": "bar", "millibars": "mbar",
    "pounds-force-per-square-inch": "psi", "inches-of-water": "inH2O", "hectopascals": "hPa",
    "cubic-meters-per-hour": "m³/h", "cubic-meters-per-second": "m³/s", "liters-per-second": "l/s",
    "liters-per-minute": "l/min", "liters-per-hour": "l/h", "us-gallons-per-minute": "gpm",
    "cubic-feet-per-minute": "cfm",
    "amperes": "A", "milliamperes": "mA", "volts": "V", "millivolts": "mV", "kilovolts": "kV",
    "hertz": "Hz", "revolutions-per-minute": "rpm", "percent": "%", "percent-relative-humidity": "%",
    "parts-per-million": "ppm", "millimeters-per-second": "mm/s", "meters-per-second": "m/s",
    "volt-amperes": "VA", "kilovolt-amperes": "kVA", "volt-amperes-reactive": "var",
    "kilovolt-amperes-reactive": "kvar", "seconds": "s", "minutes": "min", "hours": "h",
}


class UnitError(ValueError):
    pass


def canonical(unit: str) -> str:
    return ALIASES.get(unit, unit)


def conversion(device_unit: str | None, metric_unit: str | None) -> tuple[float, float]:
    """(factor, offset) such that ``metric = device * factor + offset``; (1, 0) when either
    unit is unknown to the map (nothing to convert) or both are the same. UnitError when the
    two units are known but of different kinds, or one of them is not in the table."""
    if not device_unit or not metric_unit:
        return 1.0, 0.0
    a, b = canonical(device_unit), canonical(metric_unit)
    if a == b:
        return 1.0, 0.0
    if a not in UNITS:
        raise UnitError(f"unit {device_unit!r} is not one the agent converts (known: {', '.join(UNITS)})")
    if b not in UNITS:
        raise UnitError(f"unit {metric_unit!r} is not one the agent converts (known: {', '.join(UNITS)})")
    fam_a, fa, oa = UNITS[a]
    fam_b, fb, ob = UNITS[b]
    if fam_a != fam_b:
        raise UnitError(f"cannot convert {device_unit} ({fam_a}) to {metric_unit} ({fam_b})")
    # metric = ((device * fa + oa) - ob) / fb
    return fa / fb, (oa - ob) / fb
