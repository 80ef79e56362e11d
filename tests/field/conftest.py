"""Fixtures of the field-device tests: the real ingest worker, test devices, agents, and the
platform's rows (site, node, asset type with the map's metrics, assets)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.factories import make_asset, make_asset_type, make_node, make_site
from tests.field.helpers import AgentProcess, DeviceProcess
from tests.helpers import ingest_worker_running


@pytest.fixture
def ingest_worker(transactional_db, mqtt_url, settings):
    """The real ingest worker on its own thread, connected to the real broker."""
    settings.INGEST_SESSION_EXPIRY_S = 60
    with ingest_worker_running(mqtt_url, "ingest") as worker:
        yield worker


@pytest.fixture
def devices(tmp_path):
    """start(module, *args) -> a running DeviceProcess, stopped after the test."""
    started: list[DeviceProcess] = []

    def start(module: str, *args: str) -> DeviceProcess:
        device = DeviceProcess(module, *args, log_dir=tmp_path).start()
        started.append(device)
        return device

    yield start
    for device in started:
        device.stop()


@pytest.fixture
def agents():
    started: list[AgentProcess] = []

    def start(config: Path) -> AgentProcess:
        agent = AgentProcess(config)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


@dataclass
class Platform:
    """What the platform knows of one gateway: its node and the assets its devices feed."""

    node_id: str
    assets: dict[str, object]  # asset key -> twins.Asset
    metrics: dict[str, dict[str, object]]  # asset key -> metric key -> Metric
    t0: float


@pytest.fixture
def platform(transactional_db):
    """make(metrics_by_asset) -> Platform with one asset type per asset (metrics: (key, unit, lo, hi))."""

    def make(metrics_by_asset: dict[str, list[tuple[str, str, float, float]]]) -> Platform:
        site = make_site()
        node = make_node(site, node_id=f"gw-{uuid.uuid4().hex[:8]}")
        assets, metrics = {}, {}
        for name, metric_list in metrics_by_asset.items():
            asset_type = make_asset_type(metrics=metric_list)
            asset = make_asset(site, asset_type, node)
            assets[name] = asset
            metrics[name] = {m.key: m for m in asset_type.metrics.all()}
        return Platform(node.node_id, assets, metrics, t0=time.time())

    return make


def node_toml(platform: Platform, broker_url: str, state_dir: Path, body: str, **node_keys: object) -> str:
    extra = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in node_keys.items())
    return (f'[node]\nid = "{platform.node_id}"\nstate_dir = "{state_dir}"\npublish_interval_s = 0.3\n'
            f"heartbeat_interval_s = 1.0\n{extra}\n[broker]\nurl = \"{broker_url}\"\n\n{body}")
