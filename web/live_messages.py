"""What the live socket (/ws/live/) speaks with the browser; one definition for both ends.

Browser -> server:  {"action": "subscribe", "site": <id>} or {"action": "subscribe", "asset": <id>}
Server -> browser:  Subscribed, Refused, and Updates: every FLUSH_INTERVAL_S at most, one frame
with the coalesced group messages (ingest.live.AssetUpdate, ingest.live.NodeStatusUpdate,
twins.alerting.AlertUpdate), the latest of each (asset, node, alert) winning.

The consumer also takes SiteUpdates (many asset updates of one site in one group message):
a fleet page subscribes to whole sites, and one group message per site and flush costs the
channel layer far less than one per asset (see bench/live_latency.py --mode site).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, Literal, TypedDict

from ingest.live import SiteUpdates  # noqa: F401  (defined where it is sent)

LIVE_PATH = "ws/live/"
FLUSH_INTERVAL_S = 0.25  # per client: at most 4 frames a second, whatever the ingest rate
MAX_SUBSCRIPTIONS = 200  # per socket: a fleet page subscribes to each visible site

# Group messages the live socket handles (each type has a handler on web.consumers.LiveConsumer).
GROUP_MESSAGE_TYPES = frozenset({"asset.update", "site.updates", "node.status", "alert.update", "twin.update"})

CLOSE_NOT_LOGGED_IN = 4401
CLOSE_NO_ROLE = 4403



class SubscribeRequest(TypedDict, total=False):
    action: Literal["subscribe"]
    site: int
    asset: int


class Subscribed(TypedDict):
    type: Literal["subscribed"]
    site: int | None
    asset: int | None
    server_time: float


class Refused(TypedDict):
    type: Literal["refused"]
    site: int | None
    asset: int | None
    reason: str


class Updates(TypedDict):
    type: Literal["updates"]
    messages: list[dict[str, Any]]
    server_time: float  # when the frame left the server (epoch s): lets a client tell transport lag from data age


def coalesce_key(message: dict[str, Any]) -> tuple[str, Any] | None:
    """The identity a group message is coalesced under (latest wins), or None to drop it."""
    kind = message.get("type")
    if kind == "asset.update":
        return ("asset", message["asset"])
    if kind == "node.status":
        return ("node", message["node"])
    if kind == "alert.update":
        return ("alert", message["alert"]["id"])
    if kind == "twin.update":  # twins.twin_live.TwinUpdate
        return ("twin", message["asset"])
    return None


def merge_asset_updates(older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
    """Two updates of one asset: metrics of both, the newer reading of each metric winning."""
    values = dict(older.get("values", {}))
    for key, point in newer.get("values", {}).items():
        current = values.get(key)
        if current is None or current[0] <= point[0]:
            values[key] = point
    return {**newer, "values": values, "last_seen": max(older.get("last_seen", 0), newer.get("last_seen", 0))}


# A group message reaches every socket of its group in a web process as the same object (see
# web.channel_layer), so its JSON is made once, not once per socket: with 200 fleet pages,
# encoding frames was a third of daphne's CPU. Messages are read-only once received.
ENCODED_KEPT = 4096
_encoded: OrderedDict[int, tuple[dict[str, Any], str]] = OrderedDict()


def _encoded_message(message: dict[str, Any]) -> str:
    key = id(message)
    hit = _encoded.get(key)
    if hit is not None and hit[0] is message:
        return hit[1]
    text = json.dumps(message, separators=(",", ":"))
    _encoded[key] = (message, text)  # holding the message keeps its id from being reused
    if len(_encoded) > ENCODED_KEPT:
        _encoded.popitem(last=False)
    return text


def encode_updates(messages: list[dict[str, Any]], server_time: float) -> str:
    """The JSON text of an Updates frame."""
    return '{"type":"updates","messages":[' + ",".join(map(_encoded_message, messages)) + '],"server_time":' + json.dumps(server_time) + "}"
