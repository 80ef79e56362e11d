"""Stable reason codes for rejected messages and readings (shown in the admin, counted per node)."""

from __future__ import annotations

# A whole message is rejected.
WRONG_TOPIC = "wrong_topic"
OVERSIZED = "oversized"
EMPTY_PAYLOAD = "empty_payload"
INVALID_JSON = "invalid_json"
INVALID_MSGPACK = "invalid_msgpack"
BAD_SCHEMA = "bad_schema"
UNKNOWN_NODE = "unknown_node"
REVOKED_NODE = "revoked_node"
TOO_MANY_READINGS = "too_many_readings"
STORE_FAILED = "store_failed"
UNPROCESSABLE = "unprocessable"
UNSTORABLE_VALUE = "unstorable_value"
SEQ_REUSED = "seq_reused"

# One reading (or one value of a reading) is rejected; the rest of the message is stored.
BAD_READING = "bad_reading"
UNKNOWN_ASSET = "unknown_asset"
ASSET_NOT_ON_NODE = "asset_not_on_node"
UNKNOWN_METRIC = "unknown_metric"
NOT_A_NUMBER = "not_a_number"
NOT_FINITE = "not_finite"
OUT_OF_RANGE = "out_of_range"
BAD_TIMESTAMP = "bad_timestamp"
TIMESTAMP_OUT_OF_WINDOW = "timestamp_out_of_window"

REASONS = {
    WRONG_TOPIC: "topic is not aiot/v1/<node>/(telemetry|events|status)",
    OVERSIZED: "payload larger than INGEST_MAX_PAYLOAD_BYTES",
    EMPTY_PAYLOAD: "payload is empty",
    INVALID_JSON: "payload is not valid JSON",
    INVALID_MSGPACK: "payload is not valid MessagePack",
    BAD_SCHEMA: "payload does not have the v1 shape",
    UNKNOWN_NODE: "no edge node with this id is registered",
    REVOKED_NODE: "the edge node was revoked",
    TOO_MANY_READINGS: "more readings than INGEST_MAX_READINGS_PER_MESSAGE",
    STORE_FAILED: "the database refused the message (alone, after the rest of its batch was stored)",
    UNPROCESSABLE: "the message could not be processed (the detail names the error); the worker went on",
    UNSTORABLE_VALUE: "a value the contract does not allow: nesting, integers past 64 bits, text with NUL or lone surrogates",
    SEQ_REUSED: "seq already used by this node for different content (a redelivery must carry the same bytes)",
    BAD_READING: "reading is not an object with asset, ts and values",
    UNKNOWN_ASSET: "no asset with this id",
    ASSET_NOT_ON_NODE: "the asset is served by another edge node",
    UNKNOWN_METRIC: "the asset's type has no such metric",
    NOT_A_NUMBER: "value is not a number",
    NOT_FINITE: "value is NaN or infinite",
    OUT_OF_RANGE: "value outside the metric's valid range",
    BAD_TIMESTAMP: "ts is not epoch seconds or ISO 8601 with a UTC offset",
    TIMESTAMP_OUT_OF_WINDOW: "ts too far in the past or the future",
}

EVENT_SEVERITIES = ("info", "warning", "critical")
