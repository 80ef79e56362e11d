"""Live updates from the ingest to the Channels groups of assets and sites.

Per asset, changes are coalesced (latest wins) and sent at most once per
INGEST_LIVE_INTERVAL_S (spread over batches), so a 1,000 readings/s stream costs a few group sends per second.
The message types are defined once here and consumed by the dashboard's consumers.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime
from typing import Literal, TypedDict

from channels.layers import get_channel_layer

from ingest.group_sender import send_to_groups

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


class SiteUpdates(TypedDict):
    """Every due asset update of one site in one group message."""

    type: Literal["site.updates"]
    site: int
    updates: list[AssetUpdate]


class NodeStatusUpdate(TypedDict):
    type: Literal["node.status"]
    node: str
    site: int
    online: bool
    status: dict


SPREAD = 0.2  # an asset's updates are 1 to 1 + SPREAD intervals apart
SITE_BATCH_INTERVAL_S = 0.1  # at most one site.updates message per site this often


class LivePublisher:
    """Coalesces per-asset changes and sends them, throttled, after the batch is committed."""

    def __init__(self, interval_s: float, metric_keys: dict[int, str], asset_sites: dict[int, int]) -> None:
        self.interval_s = interval_s
        self.metric_keys = metric_keys
        self.asset_sites = asset_sites
        self.pending: dict[int, dict[str, list[float]]] = {}
        self.next_due: dict[int, float] = {}  # asset -> earliest time of its next update
        self.site_pending: dict[int, dict[int, AssetUpdate]] = {}  # site -> asset -> update, for the next site batch
        self.site_next_due: dict[int, float] = {}
        self.random = random.Random()
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

    def due_in(self, now: float | None = None) -> float:
        """Seconds until the next pending update or site batch falls due (inf: nothing pending)."""
        if not self.pending and not self.site_pending:
            return float("inf")
        now = time.time() if now is None else now
        times = [self.next_due.get(a, 0.0) for a in self.pending]
        times.extend(self.site_next_due.get(s, 0.0) for s in self.site_pending)
        return max(0.0, min(times) - now)

    def flush(self, now: float | None = None) -> int:
        """Send what is due; return how many asset updates went out.

        Each due asset's update goes to its asset group (an open asset page) at once; for the
        site groups (fleet pages: many assets, many sockets) the updates are gathered into one
        ``site.updates`` message per site at most every SITE_BATCH_INTERVAL_S. Everything due
        goes out in one call on the long-lived sender loop.
        """
        if self.layer is None or not (self.pending or self.site_pending):
            return 0
        now = time.time() if now is None else now
        due: list[AssetUpdate] = []
        for asset_id in list(self.pending):
            if now < self.next_due.get(asset_id, 0.0):
                continue
            values = self.pending.pop(asset_id)
            site_id = self.asset_sites.get(asset_id)
            if site_id is None:
                continue
            due.append({"type": "asset.update", "asset": asset_id, "site": site_id, "last_seen": now, "values": values})
        for message in due:
            batch = self.site_pending.setdefault(message["site"], {})
            older = batch.get(message["asset"])
            batch[message["asset"]] = message if older is None else {**message, "values": {**older["values"], **message["values"]}}
        sites = [s for s in self.site_pending if now >= self.site_next_due.get(s, 0.0)]
        messages: list[tuple[str, dict]] = [(asset_group(m["asset"]), m) for m in due]
        for site_id in sites:
            batch: SiteUpdates = {"type": "site.updates", "site": site_id, "updates": list(self.site_pending.pop(site_id).values())}
            messages.append((site_group(site_id), batch))
        if not messages:
            return 0
        try:
            send_to_groups(messages)
        except Exception:
            # A channel-layer outage must not stop ingest; the data is stored already.
            self.failures += 1
            log.exception("live updates for %d assets not sent (failure %d)", len(due), self.failures)
            return 0
        for message in due:
            # Assets first seen in one batch would otherwise fall due together forever, and
            # every flush would send the whole fleet at once (the last of 100 group sends
            # waits ~65 ms): the first gap is 1-2 intervals, the next ones 1-1.2, so the
            # assets spread over the batches and stay spread.
            spread = 1.0 if message["asset"] not in self.next_due else SPREAD
            self.next_due[message["asset"]] = now + self.interval_s * (1.0 + spread * self.random.random())
        for site_id in sites:
            self.site_next_due[site_id] = now + SITE_BATCH_INTERVAL_S
        return len(due)

    def send_status(self, node_key: str, site_id: int, status: dict) -> None:
        if self.layer is None:
            return
        message: NodeStatusUpdate = {
            "type": "node.status", "node": node_key, "site": site_id, "online": status.get("state") == "online", "status": status,
        }
        try:
            send_to_groups([(NODES_GROUP, message), (site_group(site_id), message)])
        except Exception:
            self.failures += 1
            log.exception("node status update for %s not sent", node_key)
