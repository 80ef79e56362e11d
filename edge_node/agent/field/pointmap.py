"""One point of a map: where it is read (register, node id or object), how its raw value becomes
the metric's value (data type, byte and word order, bit field, enumeration, scale and offset,
unit conversion), its valid range, schedule and filter."""

from __future__ import annotations

import re
from typing import Any

from ..asset_types import ASSET_TYPES
from .codec import DATA_TYPES, ORDERS, REGISTER_TYPES, Transform, enum_key
from .reader import Reader
from .specs import BacnetAddress, DeviceSpec, ModbusAddress, OpcuaAddress, PointSpec
from .units import UnitError, canonical, conversion

METRIC_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TABLES = ("holding", "input", "coil", "discrete")
AGGREGATES = ("mean", "max", "min", "last")
NODE_ID_RE = re.compile(r"^(ns=\d+;|nsu=[^;]+;)?[isgb]=.+$")
BACNET_OBJECT_TYPES = (
    "analog-input", "analog-output", "analog-value", "binary-input", "binary-output", "binary-value",
    "multi-state-input", "multi-state-output", "multi-state-value", "accumulator", "pulse-converter",
    "large-analog-value", "integer-value", "positive-integer-value", "loop",
)
BINARY_ENUM = {"inactive": 0.0, "active": 1.0}
COMMON_KEYS = ("metric", "asset", "unit", "metric_unit", "scale", "offset", "range", "deadband", "deadband_pct",
               "window_s", "aggregate", "poll_interval_s", "bit", "bits", "enum")
ADDRESS_KEYS = {
    "modbus": ("register", "table", "type", "byte_order", "word_order"),
    "opcua": ("node",),
    "bacnet": ("object", "property"),
}


def parse_point(r: Reader, device: DeviceSpec, default_asset: str | None, asset_type: str | None,
                defaults: dict[str, Any]) -> PointSpec:
    # A misspelt key first: "registr = 3" is a typo, not a missing register.
    known = set(COMMON_KEYS) | set(ADDRESS_KEYS[device.protocol])
    unknown = sorted(set(r.table) - known)
    if unknown:
        raise r.fail(unknown[0], f"unknown key for a {device.protocol} point (known: {', '.join(sorted(known))})")
    metric = r.get("metric", str, required=True)
    if not METRIC_RE.match(metric):
        raise r.fail("metric", f"{metric!r} is not a valid metric key (letters, digits, _ . -; at most 64)")
    asset = r.get("asset", str, default_asset)
    if asset is None:
        raise r.fail("asset", "is required (on the point or on its [[devices]] entry)")
    catalogue = {m.name: m for m in ASSET_TYPES[asset_type]["metrics"]} if asset_type in ASSET_TYPES else None
    if catalogue is not None and metric not in catalogue:
        raise r.fail("metric", f"{metric!r} is not a metric of asset type {asset_type} (known: {', '.join(catalogue)})")
    spec = catalogue.get(metric) if catalogue else None
    unit = r.get("unit", str, None)
    metric_unit = r.get("metric_unit", str, spec.unit if spec and spec.unit else None)
    if metric_unit is None:
        metric_unit = unit
    try:
        factor, unit_offset = conversion(unit, metric_unit)
    except UnitError as exc:
        raise r.fail("unit", str(exc)) from None
    value_range = r.get("range", list, None)
    if value_range is not None:
        if len(value_range) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value_range):
            raise r.fail("range", f"must be [min, max] in {metric_unit or 'the metric unit'}, got {value_range!r}")
        if not value_range[0] < value_range[1]:
            raise r.fail("range", f"min must be below max, got {value_range!r}")
        value_range = (float(value_range[0]), float(value_range[1]))
    elif spec is not None:
        value_range = (spec.min_value, spec.max_value)
    address = _parse_address(r, device, defaults)
    bit = r.integer("bit", None, 0, 63)
    bits = r.get("bits", list, None)
    if bits is not None:
        if bit is not None:
            raise r.fail("bits", "use bit (one bit) or bits ([first, last]), not both")
        if len(bits) != 2 or not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 63 for b in bits) or bits[0] > bits[1]:
            raise r.fail("bits", f"must be [first, last] bit numbers (0..63, first <= last), got {bits!r}")
        bits = (bits[0], bits[1])
    if (bit is not None or bits is not None) and isinstance(address, ModbusAddress):
        if address.data_type.startswith("float") or address.data_type == "bool":
            raise r.fail("bit" if bit is not None else "bits", f"a bit field needs an integer type, not {address.data_type}")
        width = 16 * REGISTER_TYPES[address.data_type][0]
        top = bit if bit is not None else bits[1]  # type: ignore[index]
        if top >= width:
            raise r.fail("bit" if bit is not None else "bits", f"bit {top} is outside a {width}-bit {address.data_type}")
    enum = r.get("enum", dict, None)
    if enum is not None:
        for key, value in enum.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise r.fail("enum", f"{key!r} must map to a number (what the platform stores), got {value!r}")
        enum = {enum_key(_maybe_number(k)): float(v) for k, v in enum.items()}
    elif isinstance(address, BacnetAddress) and address.object_type.startswith("binary") and address.prop == "present-value":
        enum = dict(BINARY_ENUM)
    transform = Transform(bit=bit, bits=bits, enum=enum, scale=r.get("scale", float, 1.0), offset=r.get("offset", float, 0.0),
                          unit_factor=factor, unit_offset=unit_offset)
    if transform.scale == 0:
        raise r.fail("scale", "must not be 0")
    aggregate = r.choice("aggregate", AGGREGATES, default="last" if (enum or bit is not None or bits is not None) else None)
    point = PointSpec(
        device=device.name, asset=asset, metric=metric, address=address, transform=transform,
        unit=canonical(unit) if unit else None, metric_unit=canonical(metric_unit) if metric_unit else None,
        value_range=value_range, poll_interval_s=r.positive("poll_interval_s", device.poll_interval_s),
        deadband=_non_negative(r, "deadband"), deadband_pct=_non_negative(r, "deadband_pct"),
        window_s=_non_negative(r, "window_s"), aggregate=aggregate, where=r.where(),
    )
    r.check_unknown()
    return point


def _non_negative(r: Reader, key: str) -> float | None:
    value = r.get(key, float, None)
    if value is not None and value < 0:
        raise r.fail(key, f"must be >= 0, got {value}")
    return value


def _maybe_number(key: str) -> Any:
    try:
        return float(key) if "." in key else int(key)
    except ValueError:
        return key


def _parse_address(r: Reader, device: DeviceSpec, defaults: dict[str, Any]) -> Any:
    if device.protocol == "modbus":
        register = r.integer("register", None, 0, 65535)
        if register is None:
            raise r.fail("register", "is required (the 0-based protocol address: holding register 40001 is 0)")
        table = r.choice("table", TABLES, default="holding")
        bit_table = table in ("coil", "discrete")
        data_type = r.choice("type", DATA_TYPES, default="bool" if bit_table else "uint16")
        if bit_table != (data_type == "bool"):
            raise r.fail("type", f"{table} points are bool" if bit_table else f"{table} registers hold {', '.join(REGISTER_TYPES)}, not bool")
        byte_order = r.choice("byte_order", ORDERS, default=defaults.get("byte_order", "big"))
        word_order = r.choice("word_order", ORDERS, default=defaults.get("word_order", "big"))
        address = ModbusAddress(table, register, data_type, byte_order, word_order)
        if register + address.count > 65536:
            raise r.fail("register", f"{data_type} at {register} runs past register 65535")
        return address
    if device.protocol == "opcua":
        node = r.get("node", str, required=True)
        if not NODE_ID_RE.match(node):
            raise r.fail("node", f"{node!r} is not an OPC UA node id (like ns=2;s=Machine.Speed or ns=3;i=1001)")
        return OpcuaAddress(node)
    obj = r.get("object", str, required=True)
    m = re.match(r"^([a-z-]+)\s*[,:]\s*(\d+)$", obj.strip())
    if not m or m.group(1) not in BACNET_OBJECT_TYPES:
        raise r.fail("object", f"{obj!r} must be 'type,instance' with type one of {', '.join(BACNET_OBJECT_TYPES)}")
    instance = int(m.group(2))
    if instance > 4194302:
        raise r.fail("object", f"instance {instance} is over BACnet's 4194302")
    prop = r.get("property", str, "present-value")
    return BacnetAddress(m.group(1), instance, prop)
