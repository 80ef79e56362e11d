"""Nothing a node sends can stop the ingest: a corpus of hostile payloads through the real
broker and the real worker. Each must end as a dead letter with its reason while the valid
message published right after it is stored and the worker keeps running."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgpack
import pytest

from edge_node.agent import contract
from ingest import const, payloads, timeseries
from ingest.models import DeadLetter, NodeStream
from tests.factories import make_fleet
from tests.helpers import Publisher, ingest_worker_running, wait_until

pytestmark = pytest.mark.mqtt


@dataclass
class Case:
    name: str
    channel: str
    build: Callable[[str, float], bytes]  # (asset key, now) -> payload
    reason: str | None  # the dead letter's reason; None: accepted and stored


def telemetry(asset: str, now: float, **values) -> dict:
    return {"seq": 1, "readings": [{"asset": asset, "ts": now, "values": values or {"temperature_c": 21.0}}]}


def event(asset: str, now: float, **extra) -> dict:
    return {"asset": asset, "ts": now, "kind": "anomaly", "severity": "warning", "message": "x", **extra}


def nested(depth: int, leaf=1):
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def js(obj) -> bytes:
    return json.dumps(obj).encode()


BIG = "9" * 400  # a 400-digit integer, written into JSON text

CORPUS = [
    # nesting
    Case("JSON nested 50,000 deep", "telemetry", lambda a, n: b'{"seq":1,"readings":' + b"[" * 50_000 + b"]" * 50_000 + b"}", const.INVALID_JSON),
    Case("MessagePack nested 100,000 deep", "telemetry", lambda a, n: b"\x81\xa3seq" + b"\x91" * 100_000 + b"\x01", const.INVALID_MSGPACK),
    Case("MessagePack 1,000 deep as seq", "telemetry", lambda a, n: b"\x81\xa3seq" + b"\x91" * 1000 + b"\x01", const.BAD_SCHEMA),
    Case("JSON 900 deep as an asset key", "telemetry", lambda a, n: js({"seq": 1, "readings": [{"asset": nested(900), "ts": n, "values": {"temperature_c": 1.0}}]}), const.BAD_READING),
    Case("event data nested 40 deep", "events", lambda a, n: js(event(a, n, extra=nested(40))), const.UNSTORABLE_VALUE),
    Case("status nested 40 deep", "status", lambda a, n: js({"state": "online", "versions": nested(40)}), const.UNSTORABLE_VALUE),
    # integer size
    Case("JSON integer of 5,000 digits", "telemetry", lambda a, n: b'{"seq":1,"readings":[],"x":' + b"7" * 5000 + b"}", const.INVALID_JSON),
    Case("value of 400 digits", "telemetry", lambda a, n: js(telemetry(a, n)).replace(b"21.0", BIG.encode()), const.UNSTORABLE_VALUE),
    Case("reading ts of 400 digits", "telemetry", lambda a, n: js(telemetry(a, n)).replace(str(n).encode(), BIG.encode()), const.TIMESTAMP_OUT_OF_WINDOW),
    Case("event ts of 400 digits", "events", lambda a, n: js(event(a, n)).replace(str(n).encode(), BIG.encode()), const.TIMESTAMP_OUT_OF_WINDOW),
    Case("event score of 400 digits", "events", lambda a, n: js(event(a, n, score=1)).replace(b'"score": 1', b'"score": ' + BIG.encode()), const.UNSTORABLE_VALUE),
    Case("seq of 400 digits", "telemetry", lambda a, n: js(telemetry(a, n)).replace(b'"seq": 1', b'"seq": ' + BIG.encode()), const.BAD_SCHEMA),
    Case("status field of 400 digits", "status", lambda a, n: b'{"state": "online", "buffer_depth": ' + BIG.encode() + b"}", const.UNSTORABLE_VALUE),
    # text validity
    Case("lone surrogate in event message", "events", lambda a, n: js(event(a, n)).replace(b'"message": "x"', b'"message": "bad \\ud800 text"'), const.UNSTORABLE_VALUE),
    Case("lone surrogate in event kind", "events", lambda a, n: js(event(a, n)).replace(b'"anomaly"', b'"\\udfff"'), const.UNSTORABLE_VALUE),
    Case("lone surrogate in an event data key", "events", lambda a, n: js(event(a, n)).replace(b'"message": "x"', b'"\\ud83d": 1'), const.UNSTORABLE_VALUE),
    Case("lone surrogate in status", "status", lambda a, n: b'{"state": "online", "versions": {"agent": "\\ud800"}}', const.UNSTORABLE_VALUE),
    Case("NUL in event message", "events", lambda a, n: js(event(a, n)).replace(b'"message": "x"', b'"message": "a\\u0000b"'), const.UNSTORABLE_VALUE),
    Case("NUL in status", "status", lambda a, n: b'{"state": "online", "host": "gw\\u0000"}', const.UNSTORABLE_VALUE),
    Case("invalid UTF-8 in JSON", "telemetry", lambda a, n: js(telemetry(a, n)).replace(b"temperature_c", b"temp\xff\xfe"), const.INVALID_JSON),
    Case("UTF-16 JSON", "telemetry", lambda a, n: json.dumps(telemetry(a, n)).encode("utf-16-le"), const.INVALID_JSON),
    Case("UTF-16 JSON with a byte-order mark", "telemetry", lambda a, n: json.dumps(telemetry(a, n)).encode("utf-16"), const.INVALID_JSON),
    Case("invalid UTF-8 in a MessagePack string", "telemetry", lambda a, n: b"\x82\xa3seq\x01\xa8readings\x91\x81\xa5asset\xa2\xff\xfe", const.INVALID_MSGPACK),
    # numbers and times
    Case("JSON NaN literal", "telemetry", lambda a, n: js(telemetry(a, n, temperature_c=float("nan"))), const.NOT_FINITE),
    Case("JSON 1e400 as ts", "telemetry", lambda a, n: js(telemetry(a, n)).replace(str(n).encode(), b"1e400"), const.BAD_TIMESTAMP),
    Case("ISO ts of year 1", "telemetry", lambda a, n: js(telemetry(a, n)).replace(str(n).encode(), b'"0001-01-01T00:00:00+14:00"'), const.TIMESTAMP_OUT_OF_WINDOW),
    Case("ISO ts of 10,000 characters", "telemetry", lambda a, n: js(telemetry(a, n)).replace(str(n).encode(), b'"' + b"2" * 10_000 + b'"'), const.BAD_TIMESTAMP),
    Case("MessagePack timestamp as ts", "telemetry", lambda a, n: msgpack.packb({"seq": 1, "readings": [{"asset": a, "ts": msgpack.Timestamp(int(n)), "values": {"temperature_c": 1.0}}]}), const.BAD_TIMESTAMP),
    Case("MessagePack extension as a value", "telemetry", lambda a, n: msgpack.packb({"seq": 1, "readings": [{"asset": a, "ts": n, "values": {"temperature_c": msgpack.ExtType(5, b"\x00" * 8)}}]}), const.NOT_A_NUMBER),
    Case("MessagePack bytes as a metric name", "telemetry", lambda a, n: msgpack.packb({"seq": 1, "readings": [{"asset": a, "ts": n, "values": {b"\x00\xff": 1.0}}]}), const.UNKNOWN_METRIC),
    Case("a JSON string body", "telemetry", lambda a, n: b'"just text"', const.INVALID_JSON),
    # accepted
    Case("JSON with a UTF-8 byte-order mark", "telemetry", lambda a, n: b"\xef\xbb\xbf" + js(telemetry(a, n)), None),
]


def test_every_hostile_payload_is_dead_lettered_and_the_next_valid_message_is_stored(ingest_worker, mqtt_url):
    failures = []
    with Publisher(mqtt_url) as pub:
        for case in CORPUS:
            fleet = make_fleet(1)  # a node per case: its dead letters and seqs are its own
            node, asset = fleet.node.node_id, fleet.assets[0].key
            pub.publish(contract.topic(node, case.channel), case.build(asset, time.time() - 1))
            good = {"seq": 1000, "readings": [{"asset": asset, "ts": time.time() - 1, "values": {"vib_rms": 1.0}}]}
            pub.publish(contract.topic(node, "telemetry"), contract.encode(good))
            expect_rows = 2 if case.reason is None else 1
            try:
                wait_until(lambda a=fleet.assets[0].id, e=expect_rows: timeseries.count_rows(a) == e, 10,
                           what=f"the valid message after {case.name}")
            except AssertionError as exc:
                failures.append(f"{case.name}: {exc}")
                continue
            letters = list(DeadLetter.objects.filter(node_key=node).values_list("reason", flat=True))
            expected = [] if case.reason is None else [case.reason]
            if letters != expected:
                failures.append(f"{case.name}: dead letters {letters}, expected {expected}")
    assert failures == []
    assert ingest_worker.stats["unprocessable"] == 0, "every class above has its own reason, not the catch-all"
    assert not ingest_worker.stop_event.is_set() and ingest_worker.connected.is_set()


def test_a_retained_hostile_status_is_dead_lettered_on_every_restart_and_ingest_goes_on(transactional_db, mqtt_url, settings):
    settings.INGEST_SESSION_EXPIRY_S = 60
    fleet = make_fleet(1)
    node, asset = fleet.node.node_id, fleet.assets[0].key
    status_topic = contract.topic(node, "status")
    with Publisher(mqtt_url) as pub:
        pub.publish(status_topic, b'{"state": "online", "host": "\\ud800\\u0000"}', retain=True)
        try:
            for round_ in (1, 2):  # the second worker gets the retained message again on subscribing
                with ingest_worker_running(mqtt_url, f"retained-{round_}") as worker:
                    wait_until(lambda r=round_: DeadLetter.objects.filter(node_key=node, reason=const.UNSTORABLE_VALUE).count() >= r,
                               what=f"the retained status dead-lettered (round {round_})")
                    pub.publish(contract.topic(node, "telemetry"), contract.encode(
                        {"seq": round_, "readings": [{"asset": asset, "ts": time.time() - 1, "values": {"vib_rms": 2.0}}]}))
                    wait_until(lambda r=round_: timeseries.count_rows(fleet.assets[0].id) == r, what="the valid reading")
                    assert worker.connected.is_set()
        finally:
            pub.publish(status_topic, b"", retain=True)


def test_an_unforeseen_failure_while_parsing_is_dead_lettered_as_unprocessable(ingest_worker, mqtt_url, monkeypatch):
    """Fault injection: parsing raises for one asset's readings (an input class nobody thought
    of). The message becomes an ``unprocessable`` dead letter naming the exception; the node is
    told it is handled; the next message is stored."""
    fleet = make_fleet(2)
    node, poison, fine = fleet.node.node_id, fleet.assets[0].key, fleet.assets[1].key
    real = payloads._parse_readings

    def parse_or_fail(msg, readings, *args):
        if any(isinstance(r, dict) and r.get("asset") == poison for r in readings):
            raise ZeroDivisionError("injected failure \ud800 with a surrogate in its text")
        return real(msg, readings, *args)

    monkeypatch.setattr(payloads, "_parse_readings", parse_or_fail)
    confirmations = []
    sent = {}
    with Publisher(mqtt_url) as pub:
        pub.client.on_message = lambda c, u, m: confirmations.append(contract.parse_confirmation(m.payload))
        pub.client.subscribe(contract.topic(node, "confirm"), qos=1)
        time.sleep(0.3)
        for seq, key in ((1, poison), (2, fine)):
            sent[seq] = contract.encode({"seq": seq, "readings": [{"asset": key, "ts": time.time() - 1, "values": {"vib_rms": 3.0}}]})
            pub.publish(contract.topic(node, "telemetry"), sent[seq])
        wait_until(lambda: timeseries.count_rows(fleet.assets[1].id) == 1, what="the next message stored")
        wait_until(lambda: {s for c in confirmations for a, b in c.get("telemetry", []) for s in range(a, b + 1)} >= {1, 2},
                   what="both seqs confirmed")
    letter = DeadLetter.objects.get(node_key=node)
    assert letter.reason == const.UNPROCESSABLE and letter.seq == 1
    assert letter.detail.startswith("ZeroDivisionError: injected failure \\ud800")
    assert bytes(letter.payload) == sent[1]  # kept whole, to be replayed once the cause is fixed
    assert ingest_worker.stats["unprocessable"] == 1


def test_a_batch_the_database_refuses_is_split_and_only_the_culprit_is_dead_lettered(ingest_worker, mqtt_url):
    """Fault injection in the database itself: a trigger refuses one asset's rows. The batch
    holding it is split until that message is found; the others of the batch are stored."""
    from django.db import connection

    fleet = make_fleet(3)
    node = fleet.node.node_id
    refused = fleet.assets[1].id
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(
                "CREATE FUNCTION test_refuse_asset() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN IF NEW.asset_id = {refused} THEN RAISE EXCEPTION 'refused by a test trigger'; END IF; RETURN NEW; END $$"
            )
            cur.execute("CREATE TRIGGER test_refuse BEFORE INSERT ON ingest_telemetry FOR EACH ROW EXECUTE FUNCTION test_refuse_asset()")
        else:
            cur.execute(
                f"CREATE TRIGGER test_refuse BEFORE INSERT ON ingest_telemetry WHEN NEW.asset_id = {refused} "
                "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"
            )
    try:
        with Publisher(mqtt_url) as pub:
            infos = [
                pub.publish(contract.topic(node, "telemetry"), contract.encode(
                    {"seq": seq, "readings": [{"asset": fleet.assets[seq % 3].key, "ts": time.time() - 1, "values": {"vib_rms": float(seq)}}]}),
                    wait=False)
                for seq in range(1, 13)  # one burst: one or two batches of the worker
            ]
            for info in infos:
                info.wait_for_publish(10)
        wait_until(lambda: NodeStream.objects.filter(node_key=node, messages__gte=8).exists(), what="the 8 storable messages")
        wait_until(lambda: DeadLetter.objects.filter(node_key=node).count() == 4, what="the 4 refused messages")
    finally:
        with connection.cursor() as cur:
            cur.execute("DROP TRIGGER test_refuse ON ingest_telemetry" if connection.vendor == "postgresql" else "DROP TRIGGER test_refuse")
            if connection.vendor == "postgresql":
                cur.execute("DROP FUNCTION test_refuse_asset()")
    letters = DeadLetter.objects.filter(node_key=node)
    assert sorted(letters.values_list("seq", flat=True)) == [1, 4, 7, 10]
    assert {letter.reason for letter in letters} == {const.STORE_FAILED}
    assert all("refused by a test trigger" in letter.detail for letter in letters)
    assert [timeseries.count_rows(a.id) for a in fleet.assets] == [4, 0, 4]
    assert ingest_worker.stats["batch_splits"] >= 1


def test_a_reused_seq_with_other_content_is_dead_lettered_and_a_true_copy_is_a_duplicate(ingest_worker, mqtt_url):
    fleet = make_fleet(1)
    node, asset = fleet.node.node_id, fleet.assets[0].key
    first = contract.encode({"seq": 7, "readings": [{"asset": asset, "ts": time.time() - 2, "values": {"vib_rms": 1.0}}]})
    other = contract.encode({"seq": 7, "readings": [{"asset": asset, "ts": time.time() - 1, "values": {"vib_rms": 9.0}}]})
    with Publisher(mqtt_url) as pub:
        pub.publish(contract.topic(node, "telemetry"), first)
        wait_until(lambda: timeseries.count_rows(fleet.assets[0].id) == 1, what="the first content")
        pub.publish(contract.topic(node, "telemetry"), first)  # a redelivery: same bytes
        pub.publish(contract.topic(node, "telemetry"), other)  # a reused seq: other bytes
    wait_until(lambda: DeadLetter.objects.filter(node_key=node).exists(), what="the reused seq's dead letter")
    wait_until(lambda: NodeStream.objects.filter(node_key=node, duplicates=1).exists(), what="the redelivery counted")
    letter = DeadLetter.objects.get(node_key=node)
    assert letter.reason == const.SEQ_REUSED and letter.seq == 7 and bytes(letter.payload) == other
    assert [v for _t, v in timeseries.fetch_rows(fleet.assets[0].id, fleet.metrics["vib_rms"].id)] == [1.0]


def test_it_confirms_to_each_node_what_it_stored_after_the_commit(ingest_worker, mqtt_url):
    """The end-to-end contract with a paho "node": every seq, stored, duplicate or
    dead-lettered, is confirmed, and only once its rows are in the database."""
    fleet = make_fleet(1)
    node, asset = fleet.node.node_id, fleet.assets[0].key
    confirmed: list[tuple[int, int]] = []

    def on_confirm(client, userdata, message):
        for first, last in contract.parse_confirmation(message.payload).get("telemetry", []):
            # when the confirmation arrives the rows are committed: readable from here
            confirmed.append((first, last, timeseries.count_rows(fleet.assets[0].id)))

    with Publisher(mqtt_url) as pub:
        pub.client.on_message = on_confirm
        pub.client.subscribe(contract.topic(node, "confirm"), qos=1)
        time.sleep(0.3)
        batches = {seq: contract.encode({"seq": seq, "readings": [{"asset": asset, "ts": time.time() - 1, "values": {"vib_rms": float(seq)}}]})
                   for seq in (1, 2, 3)}
        for seq in (1, 2, 3, 3):  # 3 twice: a redelivery
            pub.publish(contract.topic(node, "telemetry"), batches[seq])
        pub.publish(contract.topic(node, "telemetry"), b'{"seq": 4, "readings": {}}')  # dead-lettered: bad_schema
        wait_until(lambda: {s for a, b, _n in confirmed for s in range(a, b + 1)} == {1, 2, 3, 4}, what="seqs 1-4 confirmed")
    # seqs 1-3 hold one row each: when seq k is confirmed, its row and those before are committed
    assert all(rows_then >= min(last, 3) for _first, last, rows_then in confirmed), confirmed
    assert DeadLetter.objects.get(node_key=node).reason == const.BAD_SCHEMA
