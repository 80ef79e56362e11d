"""MQTT contract v1, shared by the edge agent (sender) and the platform (receiver).

This module is the one definition of topics and payload shapes. It must stay free of
Django: the agent on a gateway imports it, and so does the ingest worker.

Topics (``<node>`` is the edge node's id):

- ``aiot/v1/<node>/telemetry``  batches of readings (QoS 1)
- ``aiot/v1/<node>/events``     anomalies and alerts the node raised itself (QoS 1)
- ``aiot/v1/<node>/status``     retained heartbeat; the last will says ``offline``
- ``aiot/v1/<node>/cmd``        platform -> node commands
- ``aiot/v1/<node>/cmd/ack``    node -> platform replies

Payloads are JSON (UTF-8) or MessagePack; the receiver tells them apart by the first byte
(a JSON document here always starts with ``{``, a MessagePack map never does).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, NotRequired, TypedDict

import msgpack

TOPIC_PREFIX = "aiot/v1"
NODE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
CHANNELS = ("telemetry", "events", "status", "cmd", "cmd/ack")
TOPIC_RE = re.compile(rf"^{TOPIC_PREFIX}/(?P<node>{NODE_ID_PATTERN})/(?P<channel>telemetry|events|status|cmd/ack|cmd)$")

Channel = Literal["telemetry", "events", "status", "cmd", "cmd/ack"]


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
    type: str  # e.g. "deploy", "rollback", "config"
    args: NotRequired[dict[str, Any]]


class CommandAck(TypedDict):
    id: str
    ok: bool
    detail: NotRequired[str]
    report: NotRequired[dict[str, Any]]


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


def decode(raw: bytes) -> Any:
    """Decode a JSON or MessagePack payload; raise PayloadError with a specific reason."""
    if not raw:
        raise PayloadError("empty_payload", "the payload is empty")
    first = raw[:1]
    if first in (b"{", b"[", b" ", b"\n", b"\t", b"\r"):
        try:
            return json.loads(raw)
        except UnicodeDecodeError as exc:
            raise PayloadError("invalid_json", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
        except json.JSONDecodeError as exc:
            raise PayloadError("invalid_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError) as exc:
        if _looks_like_text(raw):
            raise PayloadError("invalid_json", "neither JSON (must start with '{') nor MessagePack") from None
        raise PayloadError("invalid_msgpack", f"{type(exc).__name__}: {exc}"[:200]) from None


def _looks_like_text(raw: bytes) -> bool:
    try:
        text = raw[:256].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)
