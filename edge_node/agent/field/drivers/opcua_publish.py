"""OPC UA publish responses with their data changes decoded in bulk.

asyncua decodes a publish response into one dataclass per change (a MonitoredItemNotification,
a DataValue, a Variant, two datetimes), then wraps each in an event for its queue: about 9 µs
of CPU per change, nearly all of a gateway's cost at 10,000 changes a second. This module reads
the DataChangeNotifications of a publish response straight from the binary (OPC UA Part 6,
5.2.2: DataValue and Variant encodings) into plain tuples; everything else in the response
(the header, status changes, events, diagnostics) is still decoded by asyncua. The response
handed back to asyncua's publish loop keeps an empty DataChangeNotification in place of each
one decoded here, so the loop acknowledges it and the subscription sees it arrive as before.

Scalar numbers and booleans are decoded here; any other variant (strings, arrays, structures)
by asyncua's own variant decoder, at its position in the same buffer. A response this decoder
cannot read is decoded whole by asyncua instead (its changes then take the subscription's
iterator path, which the driver reads too).

The hook is the client session's ``publish`` (asyncua 2.1: ``Client.uaclient.session``, whose
publish loop calls ``self.publish(acks)``), replaced on that one session object only.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import extensionobject_from_binary, from_binary, nodeid_from_binary, struct_from_binary, variant_from_binary
from asyncua.ua.uaerrors import UaStructParsingError

log = logging.getLogger(__name__)

DATA_CHANGE_BINARY = ua.NodeId(ua.ObjectIds.DataChangeNotification_Encoding_DefaultBinary)
PUBLISH_RESPONSE_BINARY = ua.NodeId(ua.ObjectIds.PublishResponse_Encoding_DefaultBinary)
FILETIME_UNIX_EPOCH = 116_444_736_000_000_000  # 1970-01-01 in 100 ns ticks since 1601-01-01
TICKS_PER_S = 10_000_000

# Variant type id -> how its scalar is encoded (Boolean .. Double)
SCALARS = {1: struct.Struct("<?"), 2: struct.Struct("<b"), 3: struct.Struct("<B"), 4: struct.Struct("<h"),
           5: struct.Struct("<H"), 6: struct.Struct("<i"), 7: struct.Struct("<I"), 8: struct.Struct("<q"),
           9: struct.Struct("<Q"), 10: struct.Struct("<f"), 11: struct.Struct("<d")}
FLOAT_TYPE = 10
LOCALIZED_TEXT_TYPE = 21
U8 = struct.Struct("<B")
U16 = struct.Struct("<H")
I32 = struct.Struct("<i")
U32 = struct.Struct("<I")
I64 = struct.Struct("<q")
ITEM_HEAD = struct.Struct("<IB")  # ClientHandle, DataValue encoding mask

# One change: (client handle, variant type id, value, status code, source time, server time);
# the status is 0 when the DataValue has none (Good), the times are 100 ns ticks since 1601
# (0 when absent), the type 0 and value None when the DataValue carries no value.
Change = tuple[int, int, Any, int, int, int]


def ticks_to_unix(ticks: int) -> float:
    return (ticks - FILETIME_UNIX_EPOCH) / TICKS_PER_S


def _variant(data: bytes, pos: int) -> tuple[int, Any, int]:
    """(type id, value, position after) of the Variant at ``pos``."""
    mask = data[pos]
    vtype = mask & 0x3F
    if not mask & 0xC0:  # a scalar
        codec = SCALARS.get(vtype)
        if codec is not None:
            return vtype, codec.unpack_from(data, pos + 1)[0], pos + 1 + codec.size
        if vtype == 0:
            return 0, None, pos + 1
    buf = Buffer(data, pos)
    variant = variant_from_binary(buf)
    return vtype, variant.Value, buf.cur_pos


def decode_data_changes(data: bytes, pos: int, end: int) -> list[Change]:
    """The MonitoredItems of a DataChangeNotification body at data[pos:end]."""
    (count,) = I32.unpack_from(data, pos)
    pos += 4
    out: list[Change] = []
    append = out.append
    unpack_head = ITEM_HEAD.unpack_from
    unpack_i64 = I64.unpack_from
    scalars = SCALARS
    for _ in range(max(count, 0)):
        handle, mask = unpack_head(data, pos)
        pos += 5
        vtype, value, status, source, server = 0, None, 0, 0, 0
        if mask & 0x01:
            vmask = data[pos]
            codec = scalars.get(vmask) if vmask < 0x40 else None
            if codec is not None:
                vtype = vmask
                value = codec.unpack_from(data, pos + 1)[0]
                pos += 1 + codec.size
            else:
                vtype, value, pos = _variant(data, pos)
        if mask & 0x02:
            (status,) = U32.unpack_from(data, pos)
            pos += 4
        if mask & 0x04:
            (source,) = unpack_i64(data, pos)
            pos += 8
        if mask & 0x10:  # SourcePicoseconds
            pos += 2
        if mask & 0x08:
            (server,) = unpack_i64(data, pos)
            pos += 8
        if mask & 0x20:  # ServerPicoseconds
            pos += 2
        append((handle, vtype, value, status, source, server))
    if pos > end:
        raise UaStructParsingError(f"DataChangeNotification overran its body by {pos - end} bytes")
    return out


def decode_publish_response(data: bytes) -> tuple[ua.PublishResponse, list[list[Change]]]:
    """A PublishResponse whose DataChangeNotifications are left empty, and their changes."""
    buf = Buffer(data)
    type_id = nodeid_from_binary(buf)
    if type_id != PUBLISH_RESPONSE_BINARY:
        raise UaStructParsingError(f"not a PublishResponse: {type_id}")
    response = ua.PublishResponse()
    response.ResponseHeader = struct_from_binary(ua.ResponseHeader, buf)
    pos = buf.cur_pos
    result = response.Parameters
    (result.SubscriptionId,) = U32.unpack_from(data, pos)
    (n,) = I32.unpack_from(data, pos + 4)
    pos += 8
    result.AvailableSequenceNumbers = list(struct.unpack_from(f"<{n}I", data, pos)) if n > 0 else []
    pos += 4 * max(n, 0)
    result.MoreNotifications = bool(data[pos])
    message = result.NotificationMessage
    (message.SequenceNumber,) = U32.unpack_from(data, pos + 1)
    publish_time = I64.unpack_from(data, pos + 5)[0]
    message.PublishTime = ua.win_epoch_to_datetime(publish_time) if publish_time else None  # type: ignore[assignment]
    (n,) = I32.unpack_from(data, pos + 13)
    pos += 17
    notifications: list[Any] = []
    changes: list[list[Change]] = []
    for _ in range(max(n, 0)):
        buf = Buffer(data, pos)
        type_id = nodeid_from_binary(buf)
        body = buf.cur_pos
        if type_id == DATA_CHANGE_BINARY and data[body] == 0x01:
            (length,) = I32.unpack_from(data, body + 1)
            start = body + 5
            if length > 0:
                changes.append(decode_data_changes(data, start, start + length))
                notifications.append(ua.DataChangeNotification())
                pos = start + length
                continue
        buf = Buffer(data, pos)
        notifications.append(extensionobject_from_binary(buf))
        pos = buf.cur_pos
    message.NotificationData = notifications
    buf = Buffer(data, pos)
    result.Results = from_binary(list[ua.StatusCode], buf)
    result.DiagnosticInfos = from_binary(list[ua.DiagnosticInfo], buf)
    return response, changes


def install(client: Any, on_changes: Callable[[list[Change]], None]) -> bool:
    """Decode this client's publish responses here, handing each DataChangeNotification's
    changes to ``on_changes`` (on the event loop, before asyncua sees the response). False
    (and asyncua decodes as usual) when the client has no session of the expected shape."""
    session = getattr(getattr(client, "uaclient", None), "session", None)
    send = getattr(session, "_send_request", None)
    if session is None or send is None or not hasattr(session, "publish"):
        log.info("OPC UA: this asyncua has no session publish hook; data changes are decoded one by one")
        return False
    state = {"failed": False}

    async def publish(acks: list[ua.SubscriptionAcknowledgement]) -> ua.PublishResponse:
        request = ua.PublishRequest()
        request.Parameters.SubscriptionAcknowledgements = acks if acks else []
        raw = bytes(await send(request, timeout=0))
        try:
            response, changes = decode_publish_response(raw)
        except Exception as exc:  # noqa: BLE001 - asyncua decodes it instead (and raises what it raises)
            if not state["failed"]:
                state["failed"] = True
                log.warning("OPC UA: a publish response could not be decoded in bulk (%s: %s); asyncua decodes it",
                            type(exc).__name__, exc)
            try:
                return struct_from_binary(ua.PublishResponse, Buffer(raw))
            except Exception as ex:
                raise UaStructParsingError from ex
        for batch in changes:
            try:
                on_changes(batch)
            except Exception:
                log.exception("OPC UA: handling %d data changes failed", len(batch))
        return response

    session.publish = publish
    return True
