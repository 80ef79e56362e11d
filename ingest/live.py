"""Live updates from the ingest to the Channels groups of assets and sites.

Per asset, changes are coalesced (latest wins) and sent at most once per
INGEST_LIVE_INTERVAL_S, so a 1,000 readings/s stream costs a few group sends per second.
The message types are defined once here and consumed by the dashboard's consumers.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def asset_group(asset_id: int) -> str:
    return f"asset.{asset_id}"


def site_group(site_id: int) -> str:
    return f"site.{site_id}"


NODES_GROUP = "nodes"


class AssetUpdate(TypedDict):
    type: Literal["asset.update"]
    asset: int
    site: int
    last_seen: float
    # metric key -> [epoch seconds, value]
    values: dict[str, list[float]]


class NodeStatusUpdate(TypedDict):
    type: Literal["node.status"]
    node: str
    site: int
    online: bool
    status: dict


class LivePublisher:
    """Coalesces per-asset changes and sends them, throttled, after the batch is committed."""

    def __init__(self, interval_s: float, metric_keys: dict[int, str], asset_sites: dict[int, int]) -> None:
        self.interval_s = interval_s
        self.metric_keys = metric_keys
        self.asset_sites = asset_sites
        self.pending: dict[int, dict[str, list[float]]] = {}
        self.last_sent: dict[int, float] = {}
        self.layer = get_channel_layer()
        self.failures = 0

    def update_registry(self, metric_keys: dict[int, str], asset_sites: dict[int, int]) -> None:
        self.metric_keys = metric_keys
        self.asset_sites = asset_sites

    def add(self, latest: dict[int, dict[int, tuple[datetime, float]]]) -> None:
        for asset_id, metrics in latest.items():
            bucket = self.pending.setdefault(asset_id, {})
            for metric_id, (ts, value) in metrics.items():
                key = self.metric_keys.get(metric_id)
                if key is not None:
                    bucket[key] = [ts.timestamp(), value]

    def flush(self, now: float | None = None) -> int:
        """Send what is due; return how many asset updates went out."""
        if self.layer is None or not self.pending:
            return 0
        now = time.time() if now is None else now
        sent = 0
        for asset_id in list(self.pending):
            if now - self.last_sent.get(asset_id, 0.0) < self.interval_s:
                continue
            values = self.pending.pop(asset_id)
            site_id = self.asset_sites.get(asset_id)
            if site_id is None:
                continue
            message: AssetUpdate = {"type": "asset.update", "asset": asset_id, "site": site_id, "last_seen": now, "values": values}
            try:
                async_to_sync(self._send)(message)
            except Exception:
                # A channel-layer outage must not stop ingest; the data is stored already.
                self.failures += 1
                log.exception("live update for asset %s not sent (failure %d)", asset_id, self.failures)
                continue
            self.last_sent[asset_id] = now
            sent += 1
        return sent

    async def _send(self, message: AssetUpdate) -> None:
        await self.layer.group_send(asset_group(message["asset"]), message)
        await self.layer.group_send(site_group(message["site"]), message)

    def send_status(self, node_key: str, site_id: int, status: dict) -> None:
        if self.layer is None:
            return
        message: NodeStatusUpdate = {
            "type": "node.status", "node": node_key, "site": site_id, "online": status.get("state") == "online", "status": status,
        }
        try:
            async_to_sync(self.layer.group_send)(NODES_GROUP, message)
            async_to_sync(self.layer.group_send)(site_group(site_id), message)
        except Exception:
            self.failures += 1
            log.exception("node status update for %s not sent", node_key)
