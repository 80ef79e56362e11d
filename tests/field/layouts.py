"""What the test devices hold, and what the platform must store for it.

Every value is a function of a tick ``k`` that advances every ``period`` seconds from a start
time shared by the test and the device process (a restarted device continues the same
timeline). A test reads the stored ``tick`` of a reading and checks every other metric of
that reading against ``expected(k)``, to the last bit.
"""

from __future__ import annotations

import decimal
import math
import struct
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from edge_node.agent.field.codec import encode_registers, float32_value

decimal.getcontext().prec = 50


def celsius_from_fahrenheit(f: Decimal) -> float:
    """The exact conversion, rounded to the 12 significant digits the agent keeps after arithmetic."""
    return float(f"{(f - 32) * 5 / 9:.12g}")


def tick(now: float, t0: float, period: float) -> int:
    return max(0, math.floor((now - t0) / period))


def f32(x: float) -> float:
    """What a float32 register holding x reads back as (the shortest decimal of the float32)."""
    return float32_value(struct.unpack(">f", struct.pack(">f", x))[0])


@dataclass(frozen=True)
class ModbusPoint:
    metric: str
    table: str
    register: int
    data_type: str
    raw: Any  # k -> the value the device holds (in its data type)
    expected: Any  # k -> what the platform stores
    keys: dict[str, Any] = field(default_factory=dict)  # extra point-map keys
    byte_order: str = "big"
    word_order: str = "big"
    unit: str = ""
    metric_unit: str = ""
    value_range: tuple[float, float] = (-1e12, 1e12)


# A power-meter-like device: every type, both byte and word orders, scaling, bit fields, an
# enumeration, a unit conversion (°F tenths to °C), a coil; register 17 does not exist.
MODBUS_POINTS: list[ModbusPoint] = [
    ModbusPoint("tick", "holding", 0, "uint16", lambda k: k % 65536, lambda k: float(k % 65536)),
    ModbusPoint("delta_i16", "holding", 1, "int16", lambda k: -3 * k, lambda k: float(-3 * k)),
    ModbusPoint("energy_i32", "holding", 2, "int32", lambda k: -100_000 * k - 7, lambda k: float(-100_000 * k - 7)),
    ModbusPoint("count_u32_ws", "holding", 4, "uint32", lambda k: 3_000_000_000 + k, lambda k: float(3_000_000_000 + k),
                word_order="little"),
    ModbusPoint("voltage_f32", "holding", 6, "float32", lambda k: 230.1 + 0.5 * k, lambda k: f32(230.1 + 0.5 * k)),
    ModbusPoint("current_f32_ll", "holding", 8, "float32", lambda k: 12.34 + k, lambda k: f32(12.34 + k),
                byte_order="little", word_order="little"),
    ModbusPoint("total_f64", "holding", 10, "float64", lambda k: 1234.5678 * k, lambda k: 1234.5678 * k),
    ModbusPoint("freq_scaled", "holding", 14, "uint16", lambda k: 4990 + k % 20, lambda k: round((4990 + k % 20) * 0.01, 2),
                keys={"scale": 0.01}),
    ModbusPoint("alarm_bit", "holding", 15, "uint16", lambda k: (k % 2) << 3 | (k % 16) << 4, lambda k: float(k % 2),
                keys={"bit": 3}),
    ModbusPoint("stage_bits", "holding", 15, "uint16", lambda k: (k % 2) << 3 | (k % 16) << 4, lambda k: float(k % 16),
                keys={"bits": [4, 7]}),
    ModbusPoint("mode_enum", "holding", 16, "uint16", lambda k: k % 3, lambda k: float(10 * (k % 3)),
                keys={"enum": {"0": 0, "1": 10, "2": 20}}),
    ModbusPoint("temp_c", "input", 0, "int16", lambda k: 680 + k % 50, lambda k: celsius_from_fahrenheit(Decimal(680 + k % 50) / 10),
                keys={"scale": 0.1}, unit="°F", metric_unit="°C", value_range=(-40.0, 150.0)),
    ModbusPoint("run_coil", "coil", 0, "bool", lambda k: k % 2 == 0, lambda k: 1.0 if k % 2 == 0 else 0.0),
]
MISSING_REGISTER = 17  # not defined on the device: exception 2 (illegal data address)
MODBUS_HOLDING_SIZE = 17


def modbus_registers(k: int) -> dict[str, dict[int, Any]]:
    """table -> {address: register word or bit} for tick k."""
    out: dict[str, dict[int, Any]] = {"holding": {}, "input": {}, "coil": {}, "discrete": {}}
    for p in MODBUS_POINTS:
        value = p.raw(k)
        if p.table in ("coil", "discrete"):
            out[p.table][p.register] = bool(value)
            continue
        words = encode_registers(value, p.data_type, p.byte_order, p.word_order)
        for i, w in enumerate(words):
            out[p.table][p.register + i] = w
    return out


def modbus_point_map(asset: str, points: list[ModbusPoint] | None = None, *, with_missing: bool = True) -> str:
    """The [[devices.points]] tables for these points (TOML)."""
    lines = []
    for p in points or MODBUS_POINTS:
        lines += ["[[devices.points]]", f'metric = "{p.metric}"', f'asset = "{asset}"', f'table = "{p.table}"',
                  f"register = {p.register}", f'type = "{p.data_type}"']
        if p.byte_order != "big":
            lines.append(f'byte_order = "{p.byte_order}"')
        if p.word_order != "big":
            lines.append(f'word_order = "{p.word_order}"')
        if p.unit:
            lines.append(f'unit = "{p.unit}"')
        if p.metric_unit:
            lines.append(f'metric_unit = "{p.metric_unit}"')
        for key, value in p.keys.items():
            lines.append(f"{key} = {_toml(value)}")
        lines.append("")
    if with_missing:
        lines += ["[[devices.points]]", 'metric = "missing_reg"', f'asset = "{asset}"', f"register = {MISSING_REGISTER}", ""]
    return "\n".join(lines)


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml(v)}' for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def modbus_metrics() -> list[tuple[str, str, float, float]]:
    """(key, unit, min, max) of the test asset type's metrics."""
    out = [(p.metric, p.metric_unit or p.unit, p.value_range[0], p.value_range[1]) for p in MODBUS_POINTS]
    return [*out, ("missing_reg", "", -1e12, 1e12)]


# -- OPC UA: a machine ---------------------------------------------------------------------
@dataclass(frozen=True)
class UaVariable:
    name: str  # node id ns=<idx>;s=Machine.<name>, and the metric key
    variant: str  # asyncua VariantType name
    raw: Any
    expected: Any


UA_NAMESPACE = "urn:aiot:test-machine"
UA_VARIABLES: list[UaVariable] = [
    UaVariable("tick", "UInt32", lambda k: k, lambda k: float(k)),
    UaVariable("spindle_rpm", "Double", lambda k: 1450.25 + k, lambda k: 1450.25 + k),
    UaVariable("feed_f32", "Float", lambda k: 0.1 * k + 3.3, lambda k: f32(0.1 * k + 3.3)),
    UaVariable("parts_i64", "Int64", lambda k: 9_000_000_000 + k, lambda k: float(9_000_000_000 + k)),
    UaVariable("temp_i16", "Int16", lambda k: -(k % 100), lambda k: float(-(k % 100))),
    UaVariable("running", "Boolean", lambda k: k % 2 == 1, lambda k: 1.0 if k % 2 == 1 else 0.0),
]
UA_BAD_VARIABLE = "probe_mm"  # Bad_SensorFailure while (k // 6) is odd, else k / 10 mm


def ua_probe(k: int) -> tuple[float, bool]:
    """(value, good) of the probe variable at tick k."""
    return round(k / 10, 1), (k // 6) % 2 == 0


# -- BACnet: an air-handling unit --------------------------------------------------------------
@dataclass(frozen=True)
class BacnetObject:
    object_id: str
    metric: str
    raw: Any
    expected: Any
    unit: str = ""


BACNET_OBJECTS: list[BacnetObject] = [
    BacnetObject("analog-value,1", "tick", lambda k: float(k), lambda k: float(k)),
    BacnetObject("analog-input,1", "supply_temp_c", lambda k: 12.5 + 0.1 * (k % 30), lambda k: f32(12.5 + 0.1 * (k % 30))),
    BacnetObject("analog-input,2", "return_temp_f", lambda k: 71.6 + 0.2 * (k % 10), lambda k: celsius_from_fahrenheit(Decimal(f32(71.6 + 0.2 * (k % 10)))),
                 unit="°F"),
    BacnetObject("binary-input,1", "fan_running", lambda k: "active" if k % 2 else "inactive", lambda k: float(k % 2)),
    BacnetObject("multi-state-value,1", "mode", lambda k: 1 + k % 3, lambda k: float(1 + k % 3)),
]
BACNET_FAULTY = "analog-input,9"  # status-flags fault set: never a reading
