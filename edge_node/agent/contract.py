"""MQTT contract v1, shared by the edge agent (sender) and the platform (receiver).

This module is the one definition of topics and payload shapes. It must stay free of
Django: the agent on a gateway imports it, and so does the ingest worker.

Topics (``<node>`` is the edge node's id):

- ``aiot/v1/<node>/telemetry``  batches of readings (QoS 1)
- ``aiot/v1/<node>/events``     anomalies and alerts the node raised itself (QoS 1)
- ``aiot/v1/<node>/status``     retained heartbeat; the last will says ``offline``
- ``aiot/v1/<node>/cmd``        platform -> node commands (``deploy``, ``rollback`` and ``keyring``
  carry ``args.auth``, the platform's signatures for this node: edge_node/agent/keyring.py)
- ``aiot/v1/<node>/cmd/ack``    node -> platform replies
- ``aiot/v1/<node>/confirm``    platform -> node: which telemetry/event ``seq`` the platform
  has durably handled (stored, already stored, or dead-lettered with its reason)

Payloads are JSON (UTF-8, nothing else; a UTF-8 byte-order mark is ignored) or MessagePack;
the receiver tells them apart by the first byte (a JSON document here always starts with
``{``, a MessagePack map never does). What the contract does not allow is refused before it
can reach storage: nesting deeper than ``MAX_NESTING``, integers outside 64 bits, text with
NUL characters or lone surrogates (see ``check_storable``).

End-to-end delivery. The ingest publishes a ``Confirmation`` (QoS 1) to each node after the
transaction holding its messages has committed. An agent that knows confirmations
(``delivery = "confirmed"``, the default; its status says ``"delivery": "confirmed"``) keeps
every message in its outbox until it is confirmed, not merely PUBACKed by the broker, and
sends again what is unconfirmed after ``CONFIRM_TIMEOUT_S`` or a reconnect; the ingest drops
the copies by ``(node, seq)``. So a broker that acknowledged a message and then crashed, or
dropped it because no worker was subscribed yet, loses nothing. An agent that does not know
confirmations (``delivery = "broker"``, or any v1 agent written before them) never subscribes
to ``confirm``, deletes on PUBACK and is delivered at least once *to the broker* only: it
works unchanged, with the weaker guarantee. Reusing a ``seq`` for different content is a
contract violation: the platform dead-letters the second content (``seq_reused``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Literal, NotRequired, TypedDict

import msgpack

TOPIC_PREFIX = "aiot/v1"
NODE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
CHANNELS = ("telemetry", "events", "status", "cmd", "cmd/ack", "confirm")
TOPIC_RE = re.compile(
    rf"^{TOPIC_PREFIX}/(?P<node>{NODE_ID_PATTERN})/(?P<channel>telemetry|events|status|cmd/ack|cmd|confirm)$"
)
# Channels whose messages carry a ``seq`` and are confirmed end to end.
CONFIRMED_CHANNELS = ("telemetry", "events")

Channel = Literal["telemetry", "events", "status", "cmd", "cmd/ack", "confirm"]

# Limits of what a payload may hold (refused as a whole message when passed).
MAX_NESTING = 16  # arrays/objects inside each other
INT_MIN, INT_MAX = -(2**63), 2**64 - 1  # what MessagePack can carry; JSON must not exceed it
# An agent sends an unconfirmed message again after this long (and after every reconnect).
CONFIRM_TIMEOUT_S = 10.0


class Reading(TypedDict):
    asset: str
    ts: float | str  # epoch seconds (float) or ISO 8601 with offset
    values: dict[str, float]


class TelemetryBatch(TypedDict):
    seq: int
    readings: list[Reading]


class Event(TypedDict):
    """An anomaly or alert the node raised itself."""

    seq: NotRequired[int]
    asset: str
    ts: float | str
    kind: str  # e.g. "anomaly", "threshold", "fault"
    severity: NotRequired[str]  # "info" | "warning" | "critical"
    message: NotRequired[str]
    score: NotRequired[float]
    model_version: NotRequired[str]
    snippet: NotRequired[dict[str, list[float]]]


class Status(TypedDict):
    state: str  # "online" | "offline"
    ts: NotRequired[float]
    versions: NotRequired[dict[str, str]]
    cpu_percent: NotRequired[float]
    memory_mb: NotRequired[float]
    buffer_depth: NotRequired[int]
    dropped: NotRequired[int]


class Command(TypedDict):
    id: str
    type: str  # e.g. "deploy", "rollback", "keyring", "config"
    args: NotRequired[dict[str, Any]]


class CommandAck(TypedDict):
    id: str
    ok: bool
    detail: NotRequired[str]
    report: NotRequired[dict[str, Any]]


class Confirmation(TypedDict):
    """Platform -> node: the ``seq`` ranges (inclusive) handled for good, per channel."""

    telemetry: NotRequired[list[list[int]]]
    events: NotRequired[list[list[int]]]


def seq_ranges(seqs: Iterable[int]) -> list[list[int]]:
    """[3, 1, 2, 7] -> [[1, 3], [7, 7]]: a confirmation stays small for a long run of seqs."""
    out: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out


def parse_confirmation(raw: bytes) -> dict[str, list[tuple[int, int]]]:
    """A confirmation's ranges per channel; PayloadError when it is not one."""
    body = decode(raw)
    if not isinstance(body, dict):
        raise PayloadError("bad_schema", "a confirmation is an object")
    out: dict[str, list[tuple[int, int]]] = {}
    for channel in CONFIRMED_CHANNELS:
        ranges = body.get(channel, [])
        if not isinstance(ranges, list):
            raise PayloadError("bad_schema", f"confirmation {channel} is not a list")
        parsed = []
        for pair in ranges:
            if (
                not isinstance(pair, list) or len(pair) != 2
                or not all(type(v) is int and 0 <= v < 2**63 for v in pair) or pair[0] > pair[1]
            ):
                raise PayloadError("bad_schema", f"confirmation {channel} range {str(pair)[:40]} is not [first, last]")
            parsed.append((pair[0], pair[1]))
        if parsed:
            out[channel] = parsed
    return out


def topic(node: str, channel: Channel) -> str:
    return f"{TOPIC_PREFIX}/{node}/{channel}"


def subscription(channel: Channel, node: str = "+", share_group: str | None = None) -> str:
    """Topic filter for one channel; ``share_group`` makes it an MQTT 5 shared subscription."""
    base = f"{TOPIC_PREFIX}/{node}/{channel}"
    return f"$share/{share_group}/{base}" if share_group else base


def parse_topic(name: str) -> tuple[str, str] | None:
    """Return (node, channel) for a v1 topic, or None when the topic is not one of ours."""
    m = TOPIC_RE.match(name)
    if not m:
        return None
    return m.group("node"), m.group("channel")


def encode(payload: dict[str, Any], fmt: Literal["json", "msgpack"] = "json") -> bytes:
    if fmt == "msgpack":
        return msgpack.packb(payload, use_bin_type=True)
    return json.dumps(payload, separators=(",", ":"), allow_nan=True).encode()


class PayloadError(ValueError):
    """A payload that cannot be decoded; ``reason`` is a stable machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


def decode(raw: bytes) -> Any:
    """Decode a JSON or MessagePack payload; raise PayloadError with a specific reason.

    JSON must be UTF-8 (RFC 8259): UTF-16/32 are refused, a UTF-8 byte-order mark is ignored.
    Nesting beyond what the decoders take and integers past Python's digit limit are refused
    here; ``check_storable`` bounds what is kept.
    """
    if not raw:
        raise PayloadError("empty_payload", "the payload is empty")
    if raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM):]
        if not raw:
            raise PayloadError("empty_payload", "the payload is only a byte-order mark")
    elif raw.startswith(_OTHER_BOMS):
        raise PayloadError("invalid_json", "UTF-16/UTF-32 byte-order mark: JSON payloads must be UTF-8")
    first = raw[:1]
    if first in (b"{", b"[", b" ", b"\n", b"\t", b"\r"):
        if b"\x00" in raw[:4]:
            raise PayloadError("invalid_json", "UTF-16/UTF-32 text: JSON payloads must be UTF-8")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError("invalid_json", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
        try:
            return json.loads(text)
        except RecursionError:
            raise PayloadError("invalid_json", "nested too deeply") from None
        except json.JSONDecodeError as exc:
            raise PayloadError("invalid_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
        except ValueError as exc:  # integers of more than 4,300 digits
            raise PayloadError("invalid_json", f"{exc}"[:200]) from None
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError, RecursionError) as exc:
        if _looks_like_text(raw):
            raise PayloadError("invalid_json", "neither JSON (must start with '{') nor MessagePack") from None
        reason = "nested too deeply" if isinstance(exc, (msgpack.StackError, RecursionError)) else f"{type(exc).__name__}: {exc}"
        raise PayloadError("invalid_msgpack", reason[:200]) from None


def _looks_like_text(raw: bytes) -> bool:
    try:
        text = raw[:256].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


class UnstorableValue(ValueError):
    """A decoded value the contract does not allow to be stored; ``detail`` says where and why."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (NUL, lone surrogate), or None. ASCII is checked at C speed."""
    if "\x00" in text:
        return "contains a NUL character"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (not valid Unicode text)"
    return None


def check_storable(value: Any, where: str = "payload", depth: int = 0) -> None:
    """Raise UnstorableValue if ``value`` (decoded JSON/MessagePack) nests deeper than
    MAX_NESTING, holds an integer outside 64 bits, or text that is not valid Unicode."""
    if depth > MAX_NESTING:
        raise UnstorableValue(f"{where}: nested deeper than {MAX_NESTING} levels")
    kind = type(value)
    if kind is str:
        problem = text_problem(value)
        if problem:
            raise UnstorableValue(f"{where}: text {problem}")
    elif kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise UnstorableValue(f"{where}: integer outside 64 bits ({value.bit_length()} bits)")
    elif kind is dict:
        for key, item in value.items():
            if type(key) is str:
                problem = text_problem(key)
                if problem:
                    raise UnstorableValue(f"{where}: a key {problem}")
            check_storable(item, f"{where}.{str(key)[:32]}", depth + 1)
    elif kind is list or kind is tuple:
        for index, item in enumerate(value):
            check_storable(item, f"{where}[{index}]", depth + 1)
