"""The bulk decoder of OPC UA publish responses reads what asyncua's own decoder reads.

Responses are encoded by asyncua (as its server sends them), then decoded both ways; every
change must agree: client handle, value and its type, status, both timestamps; and the rest of
the response (sequence numbers, status changes, results) must be what asyncua decodes.
"""

from __future__ import annotations

import asyncio
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("asyncua")

from asyncua import ua  # noqa: E402
from asyncua.common.utils import Buffer  # noqa: E402
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary  # noqa: E402

from edge_node.agent.field.drivers.opcua_publish import decode_data_changes, decode_publish_response, ticks_to_unix  # noqa: E402

T = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def dv(value, vtype, *, status=None, source=T, server=T):
    kwargs = {"SourceTimestamp": source, "ServerTimestamp": server}
    if status is not None:
        kwargs["StatusCode"] = ua.StatusCode(status)
    return ua.DataValue(ua.Variant(value, vtype), **kwargs)


VALUES = [
    dv(1234.5, ua.VariantType.Double),
    dv(230.10000610351562, ua.VariantType.Float),
    dv(-32768, ua.VariantType.Int16),
    dv(65535, ua.VariantType.UInt16),
    dv(-2_000_000_000, ua.VariantType.Int32),
    dv(4_000_000_000, ua.VariantType.UInt32),
    dv(-(2**62), ua.VariantType.Int64),
    dv(2**63, ua.VariantType.UInt64),
    dv(True, ua.VariantType.Boolean),
    dv(-5, ua.VariantType.SByte),
    dv(200, ua.VariantType.Byte),
    dv("RUNNING", ua.VariantType.String),
    dv(ua.LocalizedText("Auto", "en"), ua.VariantType.LocalizedText),
    dv([1.5, 2.5, 3.5], ua.VariantType.Double),
    dv(0.0, ua.VariantType.Double, status=ua.StatusCodes.BadSensorFailure),
    dv(7.0, ua.VariantType.Double, status=ua.StatusCodes.UncertainLastUsableValue),
    dv(3.0, ua.VariantType.Double, source=None),
    dv(4.0, ua.VariantType.Double, source=T + timedelta(seconds=1), server=None),
    ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown)),
]


def encoded_response(items, extra=()):
    result = ua.PublishResult(SubscriptionId=42, AvailableSequenceNumbers=[7, 8], MoreNotifications=False)
    result.NotificationMessage.SequenceNumber = 8
    result.NotificationMessage.PublishTime = T
    result.NotificationMessage.NotificationData = [ua.DataChangeNotification(MonitoredItems=items), *extra]
    result.Results = [ua.StatusCode(), ua.StatusCode(ua.StatusCodes.BadSequenceNumberUnknown)]
    response = ua.PublishResponse()
    response.Parameters = result
    return struct_to_binary(response)


def test_every_change_decodes_as_asyncua_decodes_it():
    items = [ua.MonitoredItemNotification(ClientHandle=i, Value=v) for i, v in enumerate(VALUES)]
    status_change = ua.StatusChangeNotification(Status=ua.StatusCode(ua.StatusCodes.BadTimeout))
    data = encoded_response(items, [status_change])

    theirs = struct_from_binary(ua.PublishResponse, Buffer(data))
    ours, changes = decode_publish_response(data)

    assert len(changes) == 1 and len(changes[0]) == len(VALUES)
    for (handle, vtype, value, status, source, server), item in zip(changes[0], theirs.Parameters.NotificationMessage.NotificationData[0].MonitoredItems, strict=True):
        expected = item.Value
        assert handle == item.ClientHandle
        assert (vtype, value) == (expected.Value.VariantType.value, expected.Value.Value), VALUES[handle]
        assert status == (expected.StatusCode.value if expected.StatusCode is not None else 0)
        for ticks, stamp in ((source, expected.SourceTimestamp), (server, expected.ServerTimestamp)):
            assert (ticks_to_unix(ticks) if ticks else None) == (stamp.timestamp() if stamp is not None else None)

    p, q = ours.Parameters, theirs.Parameters
    assert (p.SubscriptionId, p.AvailableSequenceNumbers, p.MoreNotifications) == (42, [7, 8], False)
    assert (p.NotificationMessage.SequenceNumber, p.NotificationMessage.PublishTime) == (8, q.NotificationMessage.PublishTime)
    assert p.Results == q.Results
    # the data change is left empty for asyncua's loop (which acknowledges it); the rest is asyncua's
    assert p.NotificationMessage.NotificationData == [ua.DataChangeNotification(), q.NotificationMessage.NotificationData[1]]


def test_picoseconds_are_read_in_the_order_the_specification_gives():
    """Part 6: Value, Status, SourceTimestamp, SourcePicoseconds, ServerTimestamp, ServerPicoseconds."""
    source, server = 134_000_000_000_000_001, 134_000_000_000_000_999
    body = struct.pack("<iIB", 1, 5, 0x01 | 0x04 | 0x08 | 0x10 | 0x20) + struct.pack("<Bd", 11, 9.5)
    body += struct.pack("<qHqH", source, 7, server, 9) + struct.pack("<i", -1)
    assert decode_data_changes(body, 0, len(body)) == [(5, 11, 9.5, 0, source, server)]


def test_a_body_shorter_than_its_items_is_refused():
    items = [ua.MonitoredItemNotification(ClientHandle=1, Value=VALUES[0])]
    data = encoded_response(items)
    cut = data.index(struct.pack("<d", 1234.5))
    with pytest.raises(struct.error):
        decode_publish_response(data[: cut + 4])


# -- both paths through the gateway runtime, against asyncua's server ------------------------

NS = "urn:aiot:bulk-test"
VARIABLES = [("speed", ua.VariantType.Double, lambda k: 1000.0 + k), ("temp", ua.VariantType.Float, lambda k: 20.5 + k),
             ("count", ua.VariantType.Int32, lambda k: -7 * k), ("run", ua.VariantType.Boolean, lambda k: k % 2 == 0)]


async def until(condition, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)


def received_through_the_gateway(port: int) -> dict[bool, tuple[list[tuple[float, dict[str, float]]], dict[str, int]]]:
    """What a gateway run (the real runtime and driver) hands the agent while asyncua's server
    writes 20 ticks at 20 Hz, and the tick of each write's source timestamp: one run with the
    bulk decoder, one with asyncua decoding every change (against the same server)."""
    import tomllib

    from asyncua import Server

    from edge_node.agent.field.drivers import opcua as opcua_driver
    from edge_node.agent.field.mapfile import parse_field
    from edge_node.agent.field.runtime import FieldGateway

    toml = (f'[[devices]]\nname = "m"\nprotocol = "opcua"\nendpoint = "opc.tcp://127.0.0.1:{port}/t/"\nasset = "machine"\n'
            'poll_interval_s = 0.1\npublishing_interval_ms = 100\nqueue_size = 20\ntimeout_s = 5.0\n')
    toml += "".join(f'[[devices.points]]\nmetric = "{name}"\nnode = "ns=2;s=M.{name}"\n' for name, _, _ in VARIABLES)
    cfg = parse_field(tomllib.loads(toml), toml, Path("."), "node.toml")
    runs: dict[bool, tuple[list[tuple[float, dict[str, float]]], dict[str, int]]] = {}

    async def serve() -> None:
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/t/")
        idx = await server.register_namespace(NS)
        assert idx == 2
        nodes = [(await server.nodes.objects.add_variable(ua.NodeId(f"M.{name}", idx), name, ua.Variant(raw(0), vtype)), vtype, raw)
                 for name, vtype, raw in VARIABLES]
        async with server:
            k = 0
            for bulk in (True, False):
                opcua_driver.Driver.BULK_DECODE = bulk
                gateway = FieldGateway(cfg, t0=0.0)
                written: dict[str, int] = {}
                await asyncio.to_thread(gateway.start)
                await until(lambda g=gateway: g.health.devices["m"].mode == "subscription")
                for _ in range(20):
                    k += 1
                    stamp = datetime.now(UTC)
                    written[f"{stamp.timestamp():.6f}"] = k
                    for var, vtype, raw in nodes:
                        await server.write_attribute_value(var.nodeid, ua.DataValue(ua.Variant(raw(k), vtype), SourceTimestamp=stamp))
                    await asyncio.sleep(0.05)
                queue = gateway.sources["machine"].queue
                await until(lambda q=queue, t=stamp.timestamp(): max((ts for ts, _ in q), default=0) >= t)
                await asyncio.to_thread(gateway.stop)  # the server answers while the gateway closes its session
                runs[bulk] = (list(queue), written)

    try:
        asyncio.run(serve())
    finally:
        opcua_driver.Driver.BULK_DECODE = True
    return runs


def test_the_gateway_hands_over_every_change_exactly_whichever_path_decodes_it():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for bulk, (readings, written) in received_through_the_gateway(port).items():
        by_tick = {written[f"{ts:.6f}"]: values for ts, values in readings if f"{ts:.6f}" in written}
        assert sorted(by_tick) == sorted(written.values()), f"bulk={bulk}: ticks missing: {sorted(set(written.values()) - set(by_tick))}"
        for k, values in by_tick.items():
            assert values == {"speed": 1000.0 + k, "temp": 20.5 + k, "count": float(-7 * k), "run": 1.0 if k % 2 == 0 else 0.0}, bulk
