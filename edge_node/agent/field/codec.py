"""From what a device answers to the number the platform stores: register decoding (data type,
byte and word order), bit fields, enumerations, scale and offset, unit conversion, rounding.

Pure functions and one small class; no I/O, no protocol library. Every protocol driver hands
its raw values to ``Transform.apply``; Modbus drivers first turn registers into raw values with
``decode_registers``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

# Modbus data types: (registers, struct format char) with big-endian bytes and words.
REGISTER_TYPES: dict[str, tuple[int, str]] = {
    "int16": (1, "h"),
    "uint16": (1, "H"),
    "int32": (2, "i"),
    "uint32": (2, "I"),
    "float32": (2, "f"),
    "int64": (4, "q"),
    "uint64": (4, "Q"),
    "float64": (4, "d"),
}
BIT_TYPES = ("bool",)
DATA_TYPES = (*REGISTER_TYPES, *BIT_TYPES)
ORDERS = ("big", "little")
# Significant digits kept after arithmetic (scale, offset, unit conversion): more than any
# sensor resolves, and few enough to drop binary noise such as 230.10000000000002.
ARITHMETIC_DIGITS = 12


class DecodeError(ValueError):
    """A raw value cannot be turned into a number (the message says why)."""


def register_count(data_type: str) -> int:
    return REGISTER_TYPES[data_type][0] if data_type in REGISTER_TYPES else 1


def decode_registers(registers: list[int] | tuple[int, ...], data_type: str, byte_order: str = "big",
                     word_order: str = "big") -> int | float:
    """The value held by ``registers`` (16-bit words as a Modbus response gives them).

    ``word_order = "little"``: the least significant word comes first (the "word swap" many
    meters use); ``byte_order = "little"``: the two bytes of every word are swapped.
    """
    n, fmt = REGISTER_TYPES[data_type]
    if len(registers) != n:
        raise DecodeError(f"{data_type} needs {n} register(s), got {len(registers)}")
    words = list(registers)
    if word_order == "little":
        words.reverse()
    raw = b"".join(w.to_bytes(2, "big") for w in words)
    if byte_order == "little":
        raw = b"".join(raw[i + 1: i + 2] + raw[i: i + 1] for i in range(0, len(raw), 2))
    value = struct.unpack(">" + fmt, raw)[0]
    if fmt == "f":
        return float32_value(value)
    return value


def encode_registers(value: int | float, data_type: str, byte_order: str = "big", word_order: str = "big") -> list[int]:
    """The inverse of ``decode_registers`` (test servers and the benchmark write with it)."""
    n, fmt = REGISTER_TYPES[data_type]
    raw = struct.pack(">" + fmt, value)
    if byte_order == "little":
        raw = b"".join(raw[i + 1: i + 2] + raw[i: i + 1] for i in range(0, len(raw), 2))
    words = [int.from_bytes(raw[i: i + 2], "big") for i in range(0, len(raw), 2)]
    if word_order == "little":
        words.reverse()
    return words


def float32_value(x: float) -> float:
    """A float32's value as the shortest decimal that reads back as the same float32: a meter's
    230.1 V arrives as 230.1, not 230.10000610351562 (both are the same float32)."""
    if not math.isfinite(x) or x == 0.0:
        return x
    pack = struct.pack
    target = pack(">f", x)
    for digits in range(6, 10):
        candidate = float(f"{x:.{digits}g}")
        if pack(">f", candidate) == target:
            return candidate
    return x


def decimals_of(x: float) -> int:
    """Decimal places of a scale or offset as written (0.1 -> 1, 0.001 -> 3, 2.5 -> 1, 10 -> 0)."""
    text = repr(float(x))
    if "e" in text:
        mantissa, exp = text.split("e")
        frac = mantissa.split(".")[1].rstrip("0") if "." in mantissa else ""
        return max(0, len(frac) - int(exp))
    frac = text.split(".")[1].rstrip("0")
    return len(frac)


@dataclass(frozen=True)
class Transform:
    """What happens to one point's raw value, in this order: bit field, enumeration, scale and
    offset (in the device's unit), unit conversion (to the metric's unit), rounding."""

    bit: int | None = None
    bits: tuple[int, int] | None = None  # inclusive bit range, lowest first
    enum: dict[str, float] | None = None  # raw value (as text) -> number sent
    scale: float = 1.0
    offset: float = 0.0
    unit_factor: float = 1.0  # metric = device * factor + unit_offset
    unit_offset: float = 0.0

    @property
    def arithmetic(self) -> bool:
        return (self.scale, self.offset, self.unit_factor, self.unit_offset) != (1.0, 0.0, 1.0, 0.0)

    def apply(self, raw: Any) -> float:
        """The number to send for ``raw``; DecodeError when there is none."""
        if self.bit is not None or self.bits is not None:
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise DecodeError(f"a bit field needs an integer, got {raw!r}")
            if self.bit is not None:
                raw = (raw >> self.bit) & 1
            else:
                lo, hi = self.bits  # type: ignore[misc]
                raw = (raw >> lo) & ((1 << (hi - lo + 1)) - 1)
        if self.enum is not None:
            key = enum_key(raw)
            if key not in self.enum:
                raise DecodeError(f"value {key!r} is not in the point's enumeration ({', '.join(sorted(self.enum))})")
            value = self.enum[key]
        elif isinstance(raw, bool):
            value = 1.0 if raw else 0.0
        elif isinstance(raw, int | float):
            value = raw
        else:
            raise DecodeError(f"{type(raw).__name__} {raw!r} is not a number (map it with an enumeration)")
        if not self.arithmetic:
            return float(value)
        exact_decimal = isinstance(value, int) and self.unit_factor == 1.0 and self.unit_offset == 0.0
        result = value * self.scale + self.offset
        if exact_decimal:
            # An integer register times 0.1 plus 0.5 has exactly that many decimals: say so.
            return float(round(result, max(decimals_of(self.scale), decimals_of(self.offset))))
        result = result * self.unit_factor + self.unit_offset
        if not math.isfinite(result):
            raise DecodeError(f"{raw!r} gives a non-finite value")
        return float(f"{result:.{ARITHMETIC_DIGITS}g}")


def enum_key(raw: Any) -> str:
    """The text an enumeration table is keyed by: names as they are (BACnet's "active"),
    numbers in their plain form ("2", "1.5"), booleans as "true"/"false"."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)
