"""The ingest worker against the real broker: paho clients publish, the database is checked."""

from __future__ import annotations

import json
import time

import msgpack
import pytest

from edge_node.agent import contract
from ingest import const, timeseries
from ingest.models import DeadLetter, DeadLetterCount, EdgeEvent, LatestValue, NodeStream
from tests.factories import make_fleet
from tests.helpers import Publisher, wait_until

pytestmark = pytest.mark.mqtt


def readings_for(fleet, n: int, t0: float, value0: float = 20.0) -> list[dict]:
    return [
        {"asset": fleet.assets[i % len(fleet.assets)].key, "ts": t0 + i * 0.001, "values": {"temperature_c": value0 + i * 0.01, "vib_rms": 1.5}}
        for i in range(n)
    ]


def stored(fleet) -> int:
    return sum(timeseries.count_rows(a.id) for a in fleet.assets)


def test_it_stores_a_published_batch_exactly(ingest_worker, mqtt_url):
    fleet = make_fleet(3)
    t0 = time.time() - 10
    batch = {"seq": 1, "readings": readings_for(fleet, 30, t0)}
    with Publisher(mqtt_url) as pub:
        pub.publish(contract.topic(fleet.node.node_id, "telemetry"), contract.encode(batch))
    wait_until(lambda: stored(fleet) == 60, what="60 stored values")
    temp = fleet.metrics["temperature_c"]
    rows = timeseries.fetch_rows(fleet.assets[0].id, temp.id)
    expected = [(r["ts"], r["values"]["temperature_c"]) for r in batch["readings"] if r["asset"] == fleet.assets[0].key]
    assert [(round(t.timestamp(), 3), v) for t, v in rows] == [(round(ts, 3), v) for ts, v in expected]
    latest = LatestValue.objects.get(asset=fleet.assets[0], metric=temp)
    assert latest.value == expected[-1][1]
    fleet.assets[0].refresh_from_db()
    assert fleet.assets[0].last_seen is not None
    stream = NodeStream.objects.get(node_key=fleet.node.node_id)
    assert (stream.messages, stream.readings, stream.missing) == (1, 60, 0)


def test_it_dead_letters_each_bad_input_with_its_reason_and_stores_the_valid_ones(ingest_worker, mqtt_url):
    fleet = make_fleet(2)
    node, asset, other = fleet.node.node_id, fleet.assets[0].key, fleet.other_asset.key
    now = time.time() - 1
    good = {"asset": asset, "ts": now, "values": {"temperature_c": 25.0}}
    topic = contract.topic(node, "telemetry")
    seq = iter(range(1, 100))

    def msg(*readings) -> bytes:
        return json.dumps({"seq": next(seq), "readings": [good, *readings]}).encode()

    cases = [
        (topic, b'{"seq": 50, "readings": [', const.INVALID_JSON),
        (topic, b"\x82\xa3seq\x05\xa8readings\x91\x83", const.INVALID_MSGPACK),
        (topic, msg({"asset": asset, "ts": now, "values": {"temperature_c": float("nan")}}), const.NOT_FINITE),
        (topic, msg({"asset": asset, "ts": now, "values": {"vib_rms": float("inf")}}), const.NOT_FINITE),
        (topic, msg({"asset": asset, "ts": now, "values": {"temperature_c": "hot"}}), const.NOT_A_NUMBER),
        (topic, msg({"asset": asset, "ts": now, "values": {"temperature_c": 1e6}}), const.OUT_OF_RANGE),
        (topic, msg({"asset": "no-such-asset", "ts": now, "values": {"temperature_c": 1.0}}), const.UNKNOWN_ASSET),
        (topic, msg({"asset": other, "ts": now, "values": {"temperature_c": 1.0}}), const.ASSET_NOT_ON_NODE),
        (contract.topic(f"ghost-{node}", "telemetry"), msg(), const.UNKNOWN_NODE),
        (topic, json.dumps({"seq": 99, "readings": [good] * 20000}).encode(), const.OVERSIZED),
        (f"aiot/v1/<script>{node}/telemetry", msg(), const.WRONG_TOPIC),  # matches the wildcard, not the node-id rule
    ]
    with Publisher(mqtt_url) as pub:
        for t, payload, _reason in cases:
            pub.publish(t, payload)
        pub.publish(contract.topic(node, "telemetry"), msgpack.packb({"seq": 98, "readings": [good]}))
    expected_reasons = {reason for _t, _p, reason in cases}
    wait_until(
        lambda: expected_reasons <= set(DeadLetter.objects.filter(topic__contains=node).values_list("reason", flat=True)),
        what="a dead letter for every bad input",
    )
    # every parseable message of this node carried the good reading beside the bad one (6 JSON + 1 MessagePack)
    wait_until(lambda: timeseries.count_rows(fleet.assets[0].id) == 7, what="the 7 valid readings")
    letter = DeadLetter.objects.get(node_key=node, reason=const.OUT_OF_RANGE)
    assert "1000000.0" in letter.detail and letter.payload_size > 0 and bytes(letter.payload).startswith(b"{")
    counts = dict(DeadLetterCount.objects.filter(node_key=node).values_list("reason", "count"))
    assert counts[const.NOT_FINITE] == 2 and counts[const.OUT_OF_RANGE] == 1
    oversized = DeadLetter.objects.get(node_key=node, reason=const.OVERSIZED)
    assert len(bytes(oversized.payload)) <= 2048 < oversized.payload_size


def test_it_drops_a_redelivered_duplicate_and_counts_gaps(ingest_worker, mqtt_url):
    fleet = make_fleet(1)
    t0 = time.time() - 5
    topic = contract.topic(fleet.node.node_id, "telemetry")
    with Publisher(mqtt_url) as pub:
        for seq in (1, 2, 2, 5):  # 2 sent twice, 3 and 4 lost on the way
            pub.publish(topic, contract.encode({"seq": seq, "readings": [{"asset": fleet.assets[0].key, "ts": t0 + seq, "values": {"vib_rms": float(seq)}}]}))
    wait_until(lambda: NodeStream.objects.filter(node_key=fleet.node.node_id, messages=3, duplicates=1).exists(), what="3 messages and 1 duplicate")
    assert timeseries.count_rows(fleet.assets[0].id) == 3
    assert NodeStream.objects.get(node_key=fleet.node.node_id).missing == 2


def test_it_stores_edge_events_and_retained_status(ingest_worker, mqtt_url):
    from edge_node.models import EdgeNode

    fleet = make_fleet(1)
    node = fleet.node.node_id
    event = {"seq": 1, "asset": fleet.assets[0].key, "ts": time.time(), "kind": "anomaly", "severity": "critical", "score": 0.97, "message": "bearing band energy 8x baseline"}
    with Publisher(mqtt_url) as pub:
        pub.publish(contract.topic(node, "events"), contract.encode(event))
        pub.publish(contract.topic(node, "status"), contract.encode({"state": "online", "buffer_depth": 4, "versions": {"agent": "1.0"}}), retain=True)
        try:
            wait_until(lambda: EdgeEvent.objects.filter(node_key=node).exists(), what="the event")
            wait_until(lambda: EdgeNode.objects.get(node_id=node).online, what="the node online")
        finally:
            pub.publish(contract.topic(node, "status"), b"", retain=True)  # clear the retained message
    stored_event = EdgeEvent.objects.get(node_key=node)
    assert stored_event.asset_id == fleet.assets[0].id and stored_event.severity == "critical" and stored_event.data["score"] == 0.97
    assert EdgeNode.objects.get(node_id=node).status["buffer_depth"] == 4


def test_it_shows_dead_letter_counts_and_latest_dead_letters_to_the_admin(client, admin_user, db):
    from django.utils import timezone

    DeadLetterCount.objects.create(node_key="gw-<b>7</b>", reason=const.NOT_FINITE, count=12, last_at=timezone.now())
    DeadLetter.objects.create(received_at=timezone.now(), node_key="gw-<b>7</b>", topic="aiot/v1/gw-7/telemetry", reason=const.NOT_FINITE, detail="readings[3].temp = nan", payload=b'{"seq":1}', payload_size=9)
    admin_user.is_staff = True
    admin_user.is_superuser = True
    admin_user.save()
    client.force_login(admin_user)
    counts = client.get("/admin/ingest/deadlettercount/").content.decode()
    assert "not_finite" in counts and ">12<" in counts and "gw-&lt;b&gt;7&lt;/b&gt;" in counts
    letters = client.get("/admin/ingest/deadletter/").content.decode()
    assert "readings[3].temp = nan" in letters
