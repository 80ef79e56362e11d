"""The pure payload handling: each bad input gets its own reason, valid readings beside it are kept."""

from __future__ import annotations

import json
import time

import msgpack
import pytest

from ingest import const
from ingest.payloads import AssetInfo, Limits, MetricInfo, NodeInfo, Registry, parse_message

NOW = time.time()
METRICS = {"temp": MetricInfo(1, -40.0, 150.0), "vib": MetricInfo(2, 0.0, 100.0)}
REGISTRY = Registry(
    nodes={"n1": NodeInfo(1, 1, False), "n2": NodeInfo(2, 1, False), "gone": NodeInfo(3, 1, True)},
    assets={"a1": AssetInfo(10, 1, "n1", METRICS), "a2": AssetInfo(11, 1, "n1", METRICS), "b1": AssetInfo(20, 1, "n2", METRICS)},
)


def batch(*readings, seq=1) -> bytes:
    return json.dumps({"seq": seq, "readings": list(readings)}).encode()


def reading(asset="a1", ts=None, **values):
    return {"asset": asset, "ts": NOW - 5 if ts is None else ts, "values": values or {"temp": 20.0}}


def parse(payload: bytes, topic="aiot/v1/n1/telemetry", limits=Limits()):
    return parse_message(topic, payload, REGISTRY, NOW, limits)


def reasons(msg) -> set[str]:
    return {r.reason for r in msg.rejects}


def test_it_keeps_every_value_of_a_valid_batch():
    msg = parse(batch(reading(temp=21.5, vib=3.0), reading(asset="a2", temp=-3)))
    assert msg.rejects == []
    assert sorted((asset, metric, value) for _ts, asset, metric, value in msg.rows) == [(10, 1, 21.5), (10, 2, 3.0), (11, 1, -3.0)]
    assert msg.seq == 1 and msg.node_key == "n1"


def test_it_reads_messagepack_like_json():
    payload = msgpack.packb({"seq": 7, "readings": [reading(temp=22.0)]})
    msg = parse(payload)
    assert msg.rejects == [] and [r[3] for r in msg.rows] == [22.0] and msg.seq == 7


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"seq": 1, "readings": [', const.INVALID_JSON),
        (b"this is not json", const.INVALID_JSON),
        (b"\x81\xa3seq\xcd", const.INVALID_MSGPACK),
        (b"", const.EMPTY_PAYLOAD),
        (b'{"readings": []}', const.BAD_SCHEMA),
        (b'{"seq": "x", "readings": []}', const.BAD_SCHEMA),
        (b'{"seq": 1, "readings": {}}', const.BAD_SCHEMA),
        (b"[1, 2]", const.BAD_SCHEMA),
    ],
)
def test_it_rejects_a_malformed_message_whole_with_its_reason(payload, reason):
    msg = parse(payload)
    assert msg.rejected_whole and reasons(msg) == {reason} and msg.rows == []


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (reading(temp=float("nan")), const.NOT_FINITE),
        (reading(temp=float("inf")), const.NOT_FINITE),
        (reading(temp="21.5"), const.NOT_A_NUMBER),
        (reading(temp=True), const.NOT_A_NUMBER),
        (reading(temp=None), const.NOT_A_NUMBER),
        (reading(temp=151.0), const.OUT_OF_RANGE),
        (reading(vib=-0.1), const.OUT_OF_RANGE),
        (reading(pressure=1.0), const.UNKNOWN_METRIC),
        (reading(asset="nope"), const.UNKNOWN_ASSET),
        (reading(asset="b1"), const.ASSET_NOT_ON_NODE),
        (reading(asset="<script>alert(1)</script>"), const.UNKNOWN_ASSET),
        (reading(ts=NOW + 3600), const.TIMESTAMP_OUT_OF_WINDOW),
        (reading(ts=NOW * 1000), const.TIMESTAMP_OUT_OF_WINDOW),
        (reading(ts="yesterday"), const.BAD_TIMESTAMP),
        (reading(ts="2026-01-01T00:00:00"), const.BAD_TIMESTAMP),
        ("not an object", const.BAD_READING),
        ({"asset": "a1", "ts": NOW}, const.BAD_READING),
    ],
)
def test_it_rejects_one_bad_reading_and_keeps_the_good_ones(bad, reason):
    # JSON cannot carry NaN/Infinity in strict mode, but Python's encoder (and many devices) emit them.
    msg = parse(batch(reading(temp=20.0), bad, reading(asset="a2", temp=30.0)))
    assert not msg.rejected_whole
    assert reasons(msg) == {reason}
    assert sorted(r[3] for r in msg.rows) == [20.0, 30.0]


def test_it_accepts_iso_timestamps_with_an_offset():
    msg = parse(batch(reading(ts="2026-11-25T10:00:00+00:00")), limits=Limits(max_past_s=10**9))
    assert msg.rejects == [] and msg.rows[0][0].isoformat() == "2026-11-25T10:00:00+00:00"


def test_it_rejects_messages_on_wrong_topics_from_unknown_or_revoked_nodes_and_oversized_ones():
    assert reasons(parse(batch(reading()), topic="aiot/v1/n1/other")) == {const.WRONG_TOPIC}
    assert reasons(parse(batch(reading()), topic="aiot/v2/n1/telemetry")) == {const.WRONG_TOPIC}
    assert reasons(parse(batch(reading()), topic="aiot/v1/stranger/telemetry")) == {const.UNKNOWN_NODE}
    assert reasons(parse(batch(reading()), topic="aiot/v1/gone/telemetry")) == {const.REVOKED_NODE}
    big = batch(*[reading(temp=float(i % 100)) for i in range(200)])
    assert reasons(parse(big, limits=Limits(max_payload_bytes=1000))) == {const.OVERSIZED}
    assert reasons(parse(big, limits=Limits(max_readings=100))) == {const.TOO_MANY_READINGS}


def test_it_counts_repeated_rejects_of_one_reason_once_with_a_count():
    msg = parse(batch(*[reading(temp=float("nan")) for _ in range(30)], reading(temp=1.0)))
    [reject] = msg.rejects
    assert reject.reason == const.NOT_FINITE and reject.count == 30 and len(msg.rows) == 1


def test_it_parses_events_and_statuses():
    event = json.dumps({"seq": 3, "asset": "a1", "ts": NOW, "kind": "anomaly", "severity": "critical", "score": 0.9, "snippet": {"vib": [1.0, float("nan")]}}).encode()
    msg = parse(event, topic="aiot/v1/n1/events")
    assert msg.rejects == [] and msg.events[0].kind == "anomaly" and msg.events[0].severity == "critical"
    assert msg.events[0].data["snippet"]["vib"] == [1.0, None]  # NaN made storable
    bad_event = json.dumps({"asset": "a1", "ts": NOW, "kind": "anomaly", "severity": "apocalyptic"}).encode()
    assert reasons(parse(bad_event, topic="aiot/v1/n1/events")) == {const.BAD_SCHEMA}
    status = parse(b'{"state": "online", "cpu_percent": NaN, "buffer_depth": 3}', topic="aiot/v1/n1/status")
    assert status.status == {"state": "online", "cpu_percent": None, "buffer_depth": 3}
    assert parse(b"", topic="aiot/v1/n1/status").rejects == []  # a cleared retained status
