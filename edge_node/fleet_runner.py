"""Drive the simulated fleet (edge_node.agent.fleet) from the registry in the database.

Every registered, non-revoked edge node with assets of a simulated type becomes one simulated
agent, running the same code a gateway runs: its own MQTT credentials, its own models folder
with an anomaly model per asset type it serves, and (with platform credentials) the real deploy
path, so a rollout proposed in the demo reaches these nodes like real ones.

Each asset follows the demo plan (``edge_node.fleet_plan``): a life of thousands of operating
hours, an age spread like a real site's, and a few injected faults. The plan's ages hold at the
fleet's epoch (its first start, kept in VAR_DIR/fleet/epoch); every later start adds the time
since, so the fleet keeps ageing across restarts.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from edge_node.agent.asset_types import ASSET_TYPES
from edge_node.agent.config import DetectConfig, PlatformConfig
from edge_node.agent.fleet import AssetSpec, NodeSpec, run_fleet
from edge_node.fleet_plan import AssetLife, plan_faults, plan_lives
from edge_node.models import EdgeNode

log = logging.getLogger(__name__)

EPOCH_FILE = "epoch"
SEED_MODEL_VERSION = "1"
# The simulated nodes' first anomaly models take wear up to this level as normal (an asset well
# into its life is not an anomaly; a worn-out one, a fault, a failure are).
SEED_MODEL_NORMAL_WEAR = 0.6
# The streaming detector's z-score threshold on the demo's nodes: 30 assets sampled every second
# make some 100,000 tests an hour, and at the agent's default of 6 a heavy-tailed signal (a
# motor's bearing band energy) crosses it about once an hour on a sound machine.
DEMO_Z_THRESHOLD = 8.0


def state_dir() -> Path:
    return Path(settings.VAR_DIR) / "fleet"


def fleet_epoch(now: float | None = None) -> float:
    """When the demo fleet first started (epoch seconds): written once, read ever after."""
    now = time.time() if now is None else now
    path = state_dir() / EPOCH_FILE
    try:
        return float(path.read_text().strip())
    except FileNotFoundError:
        pass
    except ValueError:
        log.warning("%s is not a number; the fleet's ages start again from now", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{now:.3f}\n")
    return now


@dataclass(frozen=True)
class PlannedAsset:
    key: str
    type_key: str
    seed: int
    life: AssetLife | None


def planned_assets(node_ids: list[str] | None = None) -> dict[str, list[PlannedAsset]]:
    """{node id: its simulated assets with their lives}, non-revoked nodes only."""
    qs = EdgeNode.objects.filter(revoked_at__isnull=True).prefetch_related("assets__asset_type").order_by("node_id")
    if node_ids:
        qs = qs.filter(node_id__in=node_ids)
    nodes = {n.node_id: sorted((a for a in n.assets.all() if a.asset_type.key in ASSET_TYPES), key=lambda a: a.pk) for n in qs}
    # The plan covers every simulated asset of the registry, so an asset's stage does not depend
    # on which nodes this process happens to run.
    from twins.models import Asset

    lives = plan_lives(list(Asset.objects.filter(asset_type__key__in=list(ASSET_TYPES)).values_list("key", "asset_type__key")))
    return {
        node_id: [PlannedAsset(a.key, a.asset_type.key, a.pk, lives.get(a.key)) for a in assets]
        for node_id, assets in nodes.items() if assets
    }


def hvac_start_hour(t0: float) -> float:
    """The HVAC source's clock: its working day follows UTC wall-clock time."""
    dt = datetime.fromtimestamp(t0, UTC)
    return dt.hour + dt.minute / 60.0 + dt.second / 3600.0


def asset_spec(asset: PlannedAsset, elapsed_s: float, t0: float, faults: list | None = None) -> AssetSpec:
    """The simulated asset as it is ``elapsed_s`` after the fleet's epoch (wall time ``t0``)."""
    params = {"start_hour": hvac_start_hour(t0)} if asset.type_key == "hvac_unit" else {}
    if asset.life is None:
        return AssetSpec(asset.key, asset.type_key, seed=asset.seed, params=params, faults=faults or [])
    return AssetSpec(
        asset.key, asset.type_key, seed=asset.seed, fail_at=asset.life.life_s, age_s=asset.life.age_s + max(0.0, elapsed_s),
        renew_s=asset.life.renew_s, params=params, faults=faults or [],
    )


def seed_models(type_keys: set[str]) -> Path:
    """A healthy-data anomaly model per simulated asset type (trained once, a few seconds each),
    the version every simulated node starts with."""
    from edge_node.agent.const import DEFAULT_MODEL_SUFFIX
    from edge_node.agent.train_anomaly import train_anomaly_model

    root = state_dir() / "seed-models"
    for type_key in sorted(type_keys):
        name = f"{type_key}{DEFAULT_MODEL_SUFFIX}"
        if not (root / name / SEED_MODEL_VERSION / "model.onnx").is_file():
            log.info("training the simulated nodes' first anomaly model for %s", type_key)
            train_anomaly_model(type_key, root, version=SEED_MODEL_VERSION, n_windows=1500, wear_up_to=SEED_MODEL_NORMAL_WEAR)
    return root


def node_models_dir(node_id: str, type_keys: set[str], seeds: Path) -> Path:
    """The node's own models folder: seeded with the first version of each model it needs;
    what a rollout installed later stays (its ``current`` pointer survives restarts)."""
    from edge_node.agent.const import DEFAULT_MODEL_SUFFIX

    models = state_dir() / "models" / node_id
    for type_key in type_keys:
        name = f"{type_key}{DEFAULT_MODEL_SUFFIX}"
        if not (models / name / "current").is_file():
            shutil.copytree(seeds / name, models / name, dirs_exist_ok=True)
    return models


def fleet_layout(node_ids: list[str] | None = None, credentials: dict | None = None, *, now: float | None = None,
                 with_models: bool = False) -> list[NodeSpec]:
    """``credentials``: node id -> NodeCredentials (edge_node.services.issue_fleet_credentials);
    nodes with credentials log in with them and, with an HTTP secret, take deployments.
    ``with_models``: every node gets its own models folder with the seed anomaly models."""
    credentials = credentials or {}
    now = time.time() if now is None else now
    planned = planned_assets(node_ids)
    elapsed = now - fleet_epoch(now)
    lives = {a.key: a.life for assets in planned.values() for a in assets if a.life is not None}
    types = {a.key: a.type_key for assets in planned.values() for a in assets}
    faults = plan_faults(lives, types)
    seeds = seed_models(set(types.values())) if with_models else None
    nodes = []
    for node_id, assets in planned.items():
        creds = credentials.get(node_id)
        platform = None
        if creds is not None and getattr(creds, "secret", ""):
            from edge_node.signing_keys import public_key_pem, trusted_keys

            platform = PlatformConfig(url=settings.PLATFORM_PUBLIC_URL, node_secret=creds.secret, model_public_key=public_key_pem(),
                                      model_keys=trusted_keys())
        models_dir = node_models_dir(node_id, {a.type_key for a in assets}, seeds) if seeds is not None else None
        nodes.append(NodeSpec(
            node_id, username=node_id if creds else None, password=creds.mqtt_password if creds else None,
            assets=[asset_spec(a, elapsed, now, faults.get(a.key)) for a in assets], models_dir=models_dir, platform=platform,
        ))
    return nodes


def demo_detection() -> DetectConfig:
    return DetectConfig(z_threshold=DEMO_Z_THRESHOLD)


def start_fleet(broker_url: str, speedup: float = 1.0, publish_interval_s: float = 1.0, node_ids: list[str] | None = None,
                credentials: dict | None = None, with_models: bool = True) -> Callable[[], None]:
    """Start the fleet on a background thread; return the function that stops it."""
    nodes = fleet_layout(node_ids, credentials, with_models=with_models)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_fleet,
        kwargs={"nodes": nodes, "broker_url": broker_url, "state_dir": state_dir(), "speedup": speedup, "stop_event": stop,
                "publish_interval_s": publish_interval_s, "detect": demo_detection()},
        name="fleet",
        daemon=True,
    )
    thread.start()
    log.info("simulated fleet: %d nodes, %d assets", len(nodes), sum(len(n.assets) for n in nodes))

    def stop_fleet() -> None:
        stop.set()
        thread.join(timeout=15)

    return stop_fleet
