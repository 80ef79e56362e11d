"""Register decoding, value transforms, unit conversion and block planning (pure functions)."""

from __future__ import annotations

import struct

import pytest

from edge_node.agent.field.blocks import plan_blocks, plan_groups, split_block
from edge_node.agent.field.codec import DecodeError, Transform, decode_registers, encode_registers, float32_value
from edge_node.agent.field.specs import ModbusAddress, PointSpec
from edge_node.agent.field.units import UnitError, conversion


@pytest.mark.parametrize(("registers", "data_type", "byte_order", "word_order", "value"), [
    ([0x0102], "uint16", "big", "big", 258),
    ([0xFFFE], "int16", "big", "big", -2),
    ([0x0201], "uint16", "little", "big", 258),
    ([0x0001, 0x0000], "uint32", "big", "big", 65536),
    ([0x0000, 0x0001], "uint32", "big", "little", 65536),  # word swap, as many meters send
    ([0xFFFF, 0xFFF9], "int32", "big", "big", -7),
    ([0x4366, 0x199A], "float32", "big", "big", 230.1),
    ([0x199A, 0x4366], "float32", "big", "little", 230.1),
    ([0x6643, 0x9A19], "float32", "little", "big", 230.1),
    ([0x9A19, 0x6643], "float32", "little", "little", 230.1),
    ([0x4093, 0x4A45, 0x6D5C, 0xFAAD], "float64", "big", "big", 1234.5678),
    ([0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], "int64", "big", "big", -2),
])
def test_registers_decode_in_every_byte_and_word_order(registers, data_type, byte_order, word_order, value):
    assert decode_registers(registers, data_type, byte_order, word_order) == value
    assert encode_registers(value, data_type, byte_order, word_order) == registers


def test_a_float32_reads_as_the_decimal_the_device_was_given():
    raw = struct.unpack(">f", struct.pack(">f", 0.1))[0]
    assert raw != 0.1 and float32_value(raw) == 0.1
    # past 2**24 a float32 holds every other integer: 16777217 is stored as 16777216, and says so
    assert float32_value(struct.unpack(">f", struct.pack(">f", 16777217.0))[0]) == 16777216.0


def test_a_wrong_register_count_is_a_decode_error():
    with pytest.raises(DecodeError, match="float32 needs 2 register"):
        decode_registers([1], "float32")


@pytest.mark.parametrize(("transform", "raw", "value"), [
    (Transform(scale=0.1), 2301, 230.1),  # not 230.10000000000002
    (Transform(scale=0.01, offset=-40.0), 6523, 25.23),
    (Transform(bit=3), 0b1000, 1.0),
    (Transform(bits=(4, 7)), 0xA5, 10.0),
    (Transform(enum={"0": 0.0, "1": 10.0}), 1, 10.0),
    (Transform(enum={"inactive": 0.0, "active": 1.0}), "active", 1.0),
    (Transform(), True, 1.0),
    (Transform(unit_factor=0.001), 12345, 12.345),  # W -> kW
])
def test_transforms_give_the_number_a_practitioner_expects(transform, raw, value):
    assert transform.apply(raw) == value


def test_a_value_outside_its_enumeration_or_not_a_number_is_a_decode_error():
    with pytest.raises(DecodeError, match="'3' is not in the point's enumeration"):
        Transform(enum={"0": 0.0, "1": 1.0}).apply(3)
    with pytest.raises(DecodeError, match="not a number"):
        Transform().apply("overridden")


def test_units_convert_within_a_family_and_refuse_across():
    f, o = conversion("°F", "°C")
    assert round(212 * f + o, 9) == 100.0
    assert conversion("W", "kW") == (0.001, 0.0)
    assert conversion("kPa", "bar")[0] == pytest.approx(0.01)
    assert conversion("degC", "°C") == (1.0, 0.0)
    with pytest.raises(UnitError, match="cannot convert kW \\(power\\) to bar \\(pressure\\)"):
        conversion("kW", "bar")
    with pytest.raises(UnitError, match="'furlongs' is not one the agent converts"):
        conversion("furlongs", "m³/h")


def _point(register: int, data_type: str = "uint16", table: str = "holding", interval: float = 1.0) -> PointSpec:
    return PointSpec("d", "a", f"r{register}", ModbusAddress(table, register, data_type), poll_interval_s=interval)


def test_contiguous_registers_are_read_in_one_block_and_gaps_split_blocks():
    points = [_point(0), _point(1, "float32"), _point(3), _point(10), _point(0, table="input"), _point(1, "bool", "coil")]
    blocks = plan_blocks(points)
    assert [(b.table, b.start, b.count, len(b.points)) for b in blocks] == [
        ("holding", 0, 4, 3), ("holding", 10, 1, 1), ("input", 0, 1, 1), ("coil", 1, 1, 1)]
    assert [(b.start, b.count) for b in plan_blocks(points, max_gap=6) if b.table == "holding"] == [(0, 11)]
    assert [(b.start, b.count) for b in plan_blocks([_point(i) for i in range(300)])] == [(0, 125), (125, 125), (250, 50)]
    assert [(b.start, b.count) for b in split_block(blocks[0])] == [(0, 1), (1, 2), (3, 1)]


def test_points_with_different_poll_intervals_are_separate_schedules():
    groups = plan_groups([_point(0, interval=1.0), _point(1, interval=10.0), _point(2, interval=1.0)])
    assert [(g.interval_s, [(b.start, b.count) for b in g.blocks]) for g in groups] == [(1.0, [(0, 1), (2, 1)]), (10.0, [(1, 1)])]


def test_a_late_poll_keeps_the_schedule_and_a_missed_slot_is_skipped():
    from edge_node.agent.field.drivers import next_slot

    assert next_slot(10.0, 1.0, 10.3) == 11.0  # ran 0.3 s late: the next one is still on time
    assert next_slot(10.0, 1.0, 11.4) == 11.0  # finished after the next slot's time: it runs at once
    assert next_slot(10.0, 1.0, 12.5) == 12.0  # slower than its interval: 11 is skipped, 12 runs (late)
    assert next_slot(10.0, 1.0, 14.0) == 14.0
