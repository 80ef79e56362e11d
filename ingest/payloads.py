"""Pure payload handling: topic and bytes in, readings and rejects out. No database access.

``parse_message`` does not raise for any bad input it knows of: every problem becomes a
``Reject`` with a stable reason code (ingest/const.py) and a human-readable detail, and every
valid reading beside it is kept. What the contract does not allow is refused here, before any
value can reach the database (``contract.check_storable``: nesting, 64-bit integers, valid
Unicode text). The worker still calls it inside a boundary (``unprocessable``), so an input
class nobody thought of becomes a dead letter, not a stopped worker.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edge_node.agent import contract
from ingest import const

Row = tuple[datetime, int, int, float]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    id: int
    min_value: float
    max_value: float


@dataclass(frozen=True, slots=True)
class AssetInfo:
    id: int
    site_id: int
    node_key: str | None
    metrics: dict[str, MetricInfo]


@dataclass(frozen=True, slots=True)
class NodeInfo:
    id: int
    site_id: int
    revoked: bool


@dataclass
class Registry:
    """What the validator needs to know about nodes, assets and metrics (loaded by the worker)."""

    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    assets: dict[str, AssetInfo] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = 256 * 1024
    max_readings: int = 5000
    max_past_s: float = 30 * 24 * 3600
    max_future_s: float = 300


@dataclass(slots=True)
class Reject:
    reason: str
    detail: str
    count: int = 1


@dataclass(slots=True)
class EventRow:
    asset_id: int
    ts: datetime
    kind: str
    severity: str
    message: str
    data: dict[str, Any]


@dataclass(slots=True)
class ParsedMessage:
    topic: str
    node_key: str = ""
    channel: str = ""
    seq: int | None = None
    rows: list[Row] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    status: dict[str, Any] | None = None
    rejects: list[Reject] = field(default_factory=list)
    rejected_whole: bool = False

    def reject_whole(self, reason: str, detail: str) -> ParsedMessage:
        self.rejects.append(Reject(reason, detail))
        self.rejected_whole = True
        return self

    def reject(self, reason: str, detail: str) -> None:
        for existing in self.rejects:
            if existing.reason == reason:
                existing.count += 1
                if existing.count <= 5:
                    existing.detail += f"; {detail}"
                return
        self.rejects.append(Reject(reason, detail))


class _BoundedRepr(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        # repr() of an integer past 4,300 digits raises; its size is what matters here
        return super().repr_int(x, level) if x.bit_length() <= 128 else f"<integer of {x.bit_length()} bits>"


_repr = _BoundedRepr()  # Python 3.11: limits are attributes, not constructor arguments
_repr.maxlevel, _repr.maxdict, _repr.maxlist, _repr.maxtuple = 3, 4, 4, 4
_repr.maxstring, _repr.maxother, _repr.maxlong = 80, 40, 40


def _show(value: Any, limit: int = 60) -> str:
    """A short, safe repr of untrusted input for error details: bounded depth, size and digits
    (a plain repr of a deeply nested value or a huge integer would raise), ASCII only."""
    text = _repr.repr(value).encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unprocessable(topic: str, exc: BaseException, payload: bytes = b"") -> ParsedMessage:
    """The dead letter for a message whose handling raised: the exception class and a bounded,
    printable detail. The node is taken from the topic when it is one of ours, and the seq from
    the payload when it can be read, so the node is told the message is handled and does not
    send it again and again."""
    msg = ParsedMessage(topic=topic)
    parsed = contract.parse_topic(topic)
    if parsed is not None:
        msg.node_key, msg.channel = parsed
        try:
            seq = contract.decode(payload).get("seq") if payload else None
        except Exception:  # noqa: BLE001 - best effort only: this payload already failed once
            seq = None
        if type(seq) is int and 0 <= seq < 2**63:
            msg.seq = seq
    try:
        detail = str(exc)[:300].encode("ascii", "backslashreplace").decode("ascii")
    except Exception:  # noqa: BLE001 - an exception whose str() fails: keep its class name
        detail = "(no description)"
    return msg.reject_whole(const.UNPROCESSABLE, f"{type(exc).__name__}: {detail}")


def parse_ts(raw: Any, now: float, limits: Limits) -> tuple[datetime | None, str, str]:
    """(datetime, "", "") or (None, reason, detail)."""
    if isinstance(raw, bool):
        return None, const.BAD_TIMESTAMP, f"ts {_show(raw)} is not a timestamp"
    if isinstance(raw, int):
        if not -(2**53) <= raw <= 2**53:  # also keeps a 400-digit integer out of float()
            return None, const.TIMESTAMP_OUT_OF_WINDOW, f"ts {_show(raw)} is not a plausible epoch time"
        seconds = float(raw)
    elif isinstance(raw, float):
        if not math.isfinite(raw):
            return None, const.BAD_TIMESTAMP, f"ts {_show(raw)} is not finite"
        seconds = raw
    elif isinstance(raw, str):
        if len(raw) > 64:
            return None, const.BAD_TIMESTAMP, f"ts {_show(raw)} is too long for ISO 8601"
        try:
            parsed = datetime.fromisoformat(raw)
            if parsed.tzinfo is None:
                return None, const.BAD_TIMESTAMP, f"ts {_show(raw)} has no UTC offset"
            seconds = parsed.timestamp()
        except (ValueError, OverflowError):
            return None, const.BAD_TIMESTAMP, f"ts {_show(raw)} is not ISO 8601"
    else:
        return None, const.BAD_TIMESTAMP, f"ts {_show(raw)} is neither a number nor a string"
    if seconds < now - limits.max_past_s or seconds > now + limits.max_future_s:
        hint = " (milliseconds? ts is in seconds)" if seconds > now * 100 else ""
        return None, const.TIMESTAMP_OUT_OF_WINDOW, f"ts {_show(raw)} is {seconds - now:+.0f} s from now{hint}"
    return datetime.fromtimestamp(seconds, UTC), "", ""


def parse_message(topic: str, payload: bytes, registry: Registry, now: float, limits: Limits = Limits()) -> ParsedMessage:
    msg = ParsedMessage(topic=topic)
    parsed_topic = contract.parse_topic(topic)
    if parsed_topic is None or parsed_topic[1] not in ("telemetry", "events", "status"):
        return msg.reject_whole(const.WRONG_TOPIC, f"topic {_show(topic, 120)} is not one the ingest serves")
    msg.node_key, msg.channel = parsed_topic
    if len(payload) > limits.max_payload_bytes:
        return msg.reject_whole(const.OVERSIZED, f"{len(payload)} bytes > limit {limits.max_payload_bytes}")
    node = registry.nodes.get(msg.node_key)
    if node is None:
        return msg.reject_whole(const.UNKNOWN_NODE, f"node {_show(msg.node_key)} is not registered")
    if node.revoked:
        return msg.reject_whole(const.REVOKED_NODE, f"node {_show(msg.node_key)} was revoked")
    if msg.channel == "status" and not payload:
        return msg  # a cleared retained status: nothing to do
    try:
        body = contract.decode(payload)
    except contract.PayloadError as exc:
        return msg.reject_whole(exc.reason, exc.detail)
    if not isinstance(body, dict):
        return msg.reject_whole(const.BAD_SCHEMA, f"payload is a {type(body).__name__}, not an object")
    if msg.channel == "status":
        return _parse_status(msg, body)
    seq = body.get("seq")
    if seq is not None:
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**63:
            return msg.reject_whole(const.BAD_SCHEMA, f"seq {_show(seq)} is not a non-negative integer")
        msg.seq = seq
    if msg.channel == "events":
        return _parse_event(msg, body, registry, now, limits)
    if seq is None:
        return msg.reject_whole(const.BAD_SCHEMA, "telemetry needs an integer 'seq'")
    readings = body.get("readings")
    if not isinstance(readings, list):
        return msg.reject_whole(const.BAD_SCHEMA, "telemetry needs a 'readings' list")
    if len(readings) > limits.max_readings:
        return msg.reject_whole(const.TOO_MANY_READINGS, f"{len(readings)} readings > limit {limits.max_readings}")
    _parse_readings(msg, readings, registry, now, limits)
    return msg


def _asset_for(msg: ParsedMessage, key: Any, registry: Registry) -> AssetInfo | None:
    if not isinstance(key, str):
        msg.reject(const.BAD_READING, f"asset {_show(key)} is not a string")
        return None
    asset = registry.assets.get(key)
    if asset is None:
        msg.reject(const.UNKNOWN_ASSET, f"asset {_show(key)}")
        return None
    if asset.node_key != msg.node_key:
        msg.reject(const.ASSET_NOT_ON_NODE, f"asset {_show(key)} is not served by node {msg.node_key}")
        return None
    return asset


def _parse_readings(msg: ParsedMessage, readings: list, registry: Registry, now: float, limits: Limits) -> None:
    rows = msg.rows
    append = rows.append
    isfinite = math.isfinite
    last_key: Any = None
    asset: AssetInfo | None = None
    for index, reading in enumerate(readings):
        if not isinstance(reading, dict):
            msg.reject(const.BAD_READING, f"readings[{index}] is a {type(reading).__name__}")
            continue
        key = reading.get("asset")
        if key != last_key or asset is None:
            asset = _asset_for(msg, key, registry)
            last_key = key
            if asset is None:
                continue
        ts_raw = reading.get("ts")
        if type(ts_raw) is float and now - limits.max_past_s <= ts_raw <= now + limits.max_future_s:
            ts = datetime.fromtimestamp(ts_raw, UTC)  # the fast path: a float in the window
        else:
            ts, reason, detail = parse_ts(ts_raw, now, limits)
            if ts is None:
                msg.reject(reason, f"readings[{index}]: {detail}")
                continue
        values = reading.get("values")
        if not isinstance(values, dict) or not values:
            msg.reject(const.BAD_READING, f"readings[{index}] has no 'values' object")
            continue
        metrics = asset.metrics
        asset_id = asset.id
        for name, value in values.items():
            metric = metrics.get(name)
            if metric is None:
                msg.reject(const.UNKNOWN_METRIC, f"readings[{index}] metric {_show(name)}")
                continue
            kind = type(value)
            if kind is not float and kind is not int:
                msg.reject(const.NOT_A_NUMBER, f"readings[{index}].{name} = {_show(value)}")
                continue
            if kind is float:
                if not isfinite(value):
                    msg.reject(const.NOT_FINITE, f"readings[{index}].{name} = {value}")
                    continue
            elif not -(2**63) <= value < 2**64:
                msg.reject(const.UNSTORABLE_VALUE, f"readings[{index}].{name}: integer outside 64 bits")
                continue
            if not metric.min_value <= value <= metric.max_value:
                msg.reject(
                    const.OUT_OF_RANGE,
                    f"readings[{index}].{name} = {value} outside [{metric.min_value}, {metric.max_value}]",
                )
                continue
            append((ts, asset_id, metric.id, float(value)))


def _parse_event(msg: ParsedMessage, body: dict, registry: Registry, now: float, limits: Limits) -> ParsedMessage:
    asset = _asset_for(msg, body.get("asset"), registry)
    if asset is None:
        msg.rejected_whole = True
        return msg
    ts, reason, detail = parse_ts(body.get("ts"), now, limits)
    if ts is None:
        return msg.reject_whole(reason, detail)
    kind = body.get("kind")
    if not isinstance(kind, str) or not kind or len(kind) > 32:
        return msg.reject_whole(const.BAD_SCHEMA, f"event kind {_show(kind)} is not a short string")
    severity = body.get("severity", "warning")
    if severity not in const.EVENT_SEVERITIES:
        return msg.reject_whole(const.BAD_SCHEMA, f"event severity {_show(severity)} not in {const.EVENT_SEVERITIES}")
    message = body.get("message", "")
    if not isinstance(message, str):
        return msg.reject_whole(const.BAD_SCHEMA, f"event message {_show(message)} is not a string")
    extra = {k: v for k, v in body.items() if k not in ("asset", "ts", "kind", "severity", "message", "seq")}
    try:
        contract.check_storable([kind, message[:1000]], "event")
        contract.check_storable(extra, "event")
    except contract.UnstorableValue as exc:
        return msg.reject_whole(const.UNSTORABLE_VALUE, exc.detail)
    score = body.get("score")
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            return msg.reject_whole(const.NOT_A_NUMBER, f"event score {_show(score)}")
        if isinstance(score, float) and not math.isfinite(score):
            return msg.reject_whole(const.NOT_FINITE, f"event score {_show(score)}")
    msg.events.append(EventRow(asset.id, ts, kind, severity, message[:1000], json_safe(extra)))
    return msg


def _parse_status(msg: ParsedMessage, body: dict) -> ParsedMessage:
    state = body.get("state")
    if state not in ("online", "offline"):
        return msg.reject_whole(const.BAD_SCHEMA, f"status state {_show(state)} is not 'online' or 'offline'")
    try:
        contract.check_storable(body, "status")
    except contract.UnstorableValue as exc:
        return msg.reject_whole(const.UNSTORABLE_VALUE, exc.detail)
    msg.status = json_safe(body)
    return msg


def json_safe(value: Any, depth: int = 0) -> Any:
    """Decoded data (already through ``contract.check_storable``) made storable as JSON:
    NaN/inf become None, bytes become hex, keys become short strings, nesting is bounded."""
    if depth > 8:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k)[:64]: json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, bytes):
        return value[:256].hex()
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return repr(value)[:200]
