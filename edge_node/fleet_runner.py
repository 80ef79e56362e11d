"""Drive the simulated fleet (edge_node.agent.fleet) from the registry in the database.

Every registered, non-revoked edge node with assets of a simulated type becomes one
simulated agent. A few assets are set to wear out within the demo's first hours so the
dashboard and the twins have degradation to show.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from edge_node.agent.asset_types import ASSET_TYPES
from edge_node.agent.fleet import AssetSpec, NodeSpec, run_fleet
from edge_node.models import EdgeNode

log = logging.getLogger(__name__)

# Every n-th asset wears out; its end of life lands this many simulated hours after start.
FAILING_EVERY = 7
FAIL_AFTER_SIM_HOURS = (6.0, 12.0, 24.0, 48.0)


def fleet_layout(node_ids: list[str] | None = None, credentials: dict[str, str] | None = None) -> list[NodeSpec]:
    """``credentials``: node id -> MQTT password (the username is the node id)."""
    credentials = credentials or {}
    nodes = []
    qs = EdgeNode.objects.filter(revoked_at__isnull=True).prefetch_related("assets__asset_type").order_by("node_id")
    if node_ids:
        qs = qs.filter(node_id__in=node_ids)
    for node in qs:
        assets = []
        for asset in sorted(node.assets.all(), key=lambda a: a.pk):
            if asset.asset_type.key not in ASSET_TYPES:
                continue
            fail_at = None
            if asset.pk % FAILING_EVERY == 0:
                fail_at = FAIL_AFTER_SIM_HOURS[(asset.pk // FAILING_EVERY) % len(FAIL_AFTER_SIM_HOURS)] * 3600
            assets.append(AssetSpec(asset.key, asset.asset_type.key, seed=asset.pk, fail_at=fail_at))
        if assets:
            password = credentials.get(node.node_id)
            nodes.append(NodeSpec(node.node_id, username=node.node_id if password else None, password=password, assets=assets))
    return nodes


def start_fleet(broker_url: str, speedup: float = 1.0, publish_interval_s: float = 1.0, node_ids: list[str] | None = None, credentials: dict[str, str] | None = None) -> Callable[[], None]:
    """Start the fleet on a background thread; return the function that stops it."""
    nodes = fleet_layout(node_ids, credentials)
    stop = threading.Event()
    state_dir = Path(settings.VAR_DIR) / "fleet"
    thread = threading.Thread(
        target=run_fleet,
        kwargs={"nodes": nodes, "broker_url": broker_url, "state_dir": state_dir, "speedup": speedup, "stop_event": stop, "publish_interval_s": publish_interval_s},
        name="fleet",
        daemon=True,
    )
    thread.start()
    log.info("simulated fleet: %d nodes, %d assets", len(nodes), sum(len(n.assets) for n in nodes))

    def stop_fleet() -> None:
        stop.set()
        thread.join(timeout=15)

    return stop_fleet
