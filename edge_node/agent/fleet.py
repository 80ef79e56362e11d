"""Fleet simulator core: many edge agents in ONE process (no Django).

Each simulated node is a full ``Agent`` (its own MQTT connection with its own credentials
and last will, its own SQLite outbox ``<state_dir>/<node>.outbox.sqlite`` and persistent
seq). One driver thread steps every agent and one epoll thread (``netloop.NetLoop``) does
all the MQTT I/O. Asset type names are the keys of ``asset_types.ASSET_TYPES``; the source
plugin is picked from the type. Broker URLs: ``mqtt://host:port`` or ``mqtts://host:port``
(then ``ca_file``); credentials per node from ``NodeSpec``.

API (stable; ``manage.py simulate_fleet`` calls it)::

    from edge_node.agent.fleet import AssetSpec, FaultSpec, NodeSpec, run_fleet

    nodes = [
        NodeSpec("site1-gw1", username="site1-gw1", password="...", assets=[
            AssetSpec("m-101", "induction_motor", seed=1, fail_at=1800.0),
            AssetSpec("p-201", "centrifugal_pump", seed=2,
                      faults=[FaultSpec(at=120.0, kind="cavitation", duration_s=60.0)]),
            AssetSpec("ahu-1", "hvac_unit", seed=3),
            AssetSpec("eng-7", "turbofan", seed=7),   # replays C-MAPSS FD001 engine by seed
        ]),
    ]
    stop = threading.Event()
    report = run_fleet(nodes, "mqtt://127.0.0.1:1883", Path("var/fleet"), speedup=60.0,
                       stop_event=stop, publish_interval_s=1.0)   # blocks until stop is set

Times: ``fail_at`` and ``FaultSpec.at``/``duration_s`` are SIMULATED seconds after the
fleet starts; sim time runs ``speedup`` times faster than the wall clock (speedup=60:
one simulated minute per second). Every asset is sampled once per ``publish_interval_s``
wall seconds (``AssetSpec.sample_interval_s`` overrides it); reading timestamps are wall
clock epoch seconds. A turbofan plays one C-MAPSS cycle per tick by default (param
``cycle_s`` > 0: one cycle per cycle_s sim seconds; with fail_at the engine's life is
stretched to end at fail_at). With ``models_dir``, assets use
``<models_dir>/<asset_type>-anomaly`` when it exists (see train_anomaly.py); without it,
the streaming EWMA detector alone raises events. ``filter`` (FilterConfig) defaults to
sending every sample; ConfigError/ModelError are raised before anything connects.

``run_fleet`` returns a ``FleetReport`` (per-node counters). For finer control (inject a
fault while running, read counters live) use ``Fleet``: ``start()``, ``inject_fault()``,
``report()``, ``stop()``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import const, contract
from .agent import Agent
from .asset_types import ASSET_TYPES
from .config import (
    NODE_ID_RE,
    AgentConfig,
    BrokerConfig,
    BufferConfig,
    ConfigError,
    DetectConfig,
    FaultConfig,
    FilterConfig,
    PlatformConfig,
    SourceConfig,
)
from .models import ModelSlot
from .netloop import NetLoop

log = logging.getLogger(__name__)

# The driver never loops faster than this (acks wake it up; batching them is cheaper).
MIN_LOOP_S = const.MIN_TICK_S


@dataclass
class FaultSpec:
    at: float  # sim seconds after fleet start
    kind: str | None = None  # None: the source's first fault kind
    duration_s: float = 30.0  # sim seconds
    magnitude: float = 1.0


@dataclass
class AssetSpec:
    asset_id: str
    asset_type: str  # a key of asset_types.ASSET_TYPES
    seed: int = 0
    fail_at: float | None = None  # operating age (sim seconds) at which the asset has worn out
    faults: list[FaultSpec] = field(default_factory=list)
    age_s: float = 0.0  # operating age at fleet start (sim seconds); 0: fail_at is also sim time
    renew_s: float | None = None  # replaced this many sim seconds after it failed (None: stays failed)
    params: dict[str, Any] = field(default_factory=dict)  # source parameters (see sources/*.py)
    sample_interval_s: float | None = None  # wall seconds; default publish_interval_s


@dataclass
class NodeSpec:
    node_id: str
    username: str | None = None
    password: str | None = None
    assets: list[AssetSpec] = field(default_factory=list)
    models_dir: Path | None = None  # this node's own models (else the fleet's shared models_dir)
    platform: PlatformConfig | None = None  # URL, HTTP secret and signing key: takes deployments


@dataclass
class NodeReport:
    node_id: str
    connected: bool
    samples: int
    readings_sent: int
    batches: int
    events: int
    raw_bytes: int
    sent_bytes: int
    buffer_depth: int
    dropped: int


@dataclass
class FleetReport:
    nodes: list[NodeReport]
    wall_s: float

    @property
    def events(self) -> int:
        return sum(n.events for n in self.nodes)

    @property
    def readings_sent(self) -> int:
        return sum(n.readings_sent for n in self.nodes)


def node_config(spec: NodeSpec, broker_url: str, state_dir: Path, *, speedup: float = 1.0,
                publish_interval_s: float = 1.0, heartbeat_interval_s: float = 10.0,
                models_dir: Path | None = None, filter: FilterConfig | None = None,
                buffer: BufferConfig | None = None, detect: DetectConfig | None = None,
                payload_format: str = "json", ca_file: Path | None = None,
                confirm_timeout_s: float = contract.CONFIRM_TIMEOUT_S) -> AgentConfig:
    """The AgentConfig a standalone gateway would load from node.toml, built from a NodeSpec."""
    if not NODE_ID_RE.match(spec.node_id):
        raise ConfigError(f"node id {spec.node_id!r} is not valid for MQTT topics (letters, digits, _ . -; at most 64)")
    ids = [a.asset_id for a in spec.assets]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"node {spec.node_id}: asset ids must be unique")
    sources = []
    for a in spec.assets:
        if a.asset_type not in ASSET_TYPES:
            raise ConfigError(f"node {spec.node_id}: asset {a.asset_id}: unknown asset type {a.asset_type!r} "
                              f"(known: {', '.join(ASSET_TYPES)})")
        sources.append(SourceConfig(
            plugin=a.asset_type, asset=a.asset_id, seed=a.seed, params=dict(a.params),
            sample_interval_s=a.sample_interval_s or publish_interval_s, fail_at_s=a.fail_at, age_s=a.age_s, renew_s=a.renew_s,
            faults=[FaultConfig(f.at, f.kind, f.duration_s, f.magnitude) for f in a.faults],
        ))
    models = spec.models_dir or models_dir
    return AgentConfig(
        node_id=spec.node_id, username=spec.username, password=spec.password,
        broker=BrokerConfig(url=broker_url, ca_file=ca_file), sources=sources,
        filter=filter or FilterConfig(), buffer=buffer or BufferConfig(), detect=detect or DetectConfig(),
        models_dir=Path(models) if models else None, state_dir=Path(state_dir),
        publish_interval_s=publish_interval_s, heartbeat_interval_s=heartbeat_interval_s,
        speedup=speedup, payload_format=payload_format, confirm_timeout_s=confirm_timeout_s,
        platform=spec.platform or PlatformConfig(),
    )


def raise_open_files_limit() -> None:
    """Every node holds a socket and its outbox files: lift the soft fd limit to the hard one."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
    except (ImportError, ValueError, OSError) as exc:
        log.warning("fleet: cannot raise the open files limit: %s", exc)


class Fleet:
    """Many agents stepped by one driver thread. Construction validates everything
    (asset types, params, models, state dir) and connects nothing."""

    def __init__(self, nodes: list[NodeSpec], broker_url: str, state_dir: Path, *, speedup: float = 1.0,
                 publish_interval_s: float = 1.0, shared_network: bool = True, **node_kwargs: Any) -> None:
        ids = [n.node_id for n in nodes]
        if len(set(ids)) != len(ids):
            raise ConfigError("node ids must be unique in a fleet")
        self.t0 = time.time()
        self.wake = threading.Event()
        cache: dict[str, ModelSlot] = {}
        # One epoll network thread for every node (paho's own threads use select(), which
        # breaks past 1023 file descriptors, i.e. a few hundred nodes).
        self.net = NetLoop() if shared_network else None
        raise_open_files_limit()
        self.agents: dict[str, Agent] = {}
        for spec in nodes:
            cfg = node_config(spec, broker_url, Path(state_dir), speedup=speedup,
                              publish_interval_s=publish_interval_s, **node_kwargs)
            self.agents[spec.node_id] = Agent(cfg, wake=self.wake, model_cache=cache, t0=self.t0, net=self.net)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        if self.net is not None:
            self.net.start()
        for agent in self.agents.values():
            agent.start()
        self._thread = threading.Thread(target=self._drive, name="fleet-driver", daemon=True)
        self._thread.start()

    def _drive(self) -> None:
        while not self._stop.is_set():
            started = time.time()
            next_at = started + 1.0
            for agent in self.agents.values():
                try:
                    next_at = min(next_at, agent.tick(started))
                except Exception:  # one broken node must not stop the others
                    log.exception("fleet: node %s failed a tick", agent.node_id)
            delay = max(MIN_LOOP_S - (time.time() - started), next_at - time.time())
            if delay > 0:
                self.wake.wait(delay)
                self.wake.clear()

    def inject_fault(self, node_id: str, asset_id: str, kind: str | None = None, duration_s: float = 30.0,
                     magnitude: float = 1.0) -> None:
        """Start a fault now; ``duration_s`` in wall seconds."""
        self.agents[node_id].inject_fault(asset_id, kind, duration_s, magnitude)

    def report(self) -> FleetReport:
        nodes = [
            NodeReport(a.node_id, a.link.connected, a.stats.samples, a.stats.readings_sent, a.stats.batches,
                       a.stats.events, a.stats.raw_bytes, a.stats.sent_bytes, a.outbox.depth, a.outbox.dropped)
            for a in self.agents.values()
        ]
        return FleetReport(nodes, time.time() - self.t0)

    def stop(self) -> FleetReport:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        # Deliver what the nodes hold, all at once (not node after node), before the report.
        for agent in self.agents.values():
            agent.flush_pending()
        deadline = time.monotonic() + const.STOP_DELIVER_S
        while time.monotonic() < deadline and not all(a.delivered() for a in self.agents.values()):
            for agent in self.agents.values():
                if not agent.delivered():
                    agent.drain_once()
            self.wake.wait(0.05)
            self.wake.clear()
        report = self.report()
        for agent in self.agents.values():
            try:
                agent.stop(deliver_s=0)  # delivered above, all nodes together
            except Exception:
                log.exception("fleet: node %s did not stop cleanly", agent.node_id)
        if self.net is not None:
            self.net.stop()
        return report


def run_fleet(nodes: list[NodeSpec], broker_url: str, state_dir: Path, speedup: float = 1.0,
              stop_event: threading.Event | None = None, publish_interval_s: float = 1.0, *,
              duration_s: float | None = None, models_dir: Path | None = None,
              heartbeat_interval_s: float = 10.0, filter: FilterConfig | None = None,
              buffer: BufferConfig | None = None, detect: DetectConfig | None = None,
              payload_format: str = "json", ca_file: Path | None = None) -> FleetReport:
    """Run the fleet until ``stop_event`` is set (or ``duration_s`` wall seconds passed),
    then stop every agent cleanly (pending readings stay in each node's outbox) and return
    the counters. Raises ConfigError/ModelError before connecting if anything is invalid."""
    fleet = Fleet(nodes, broker_url, state_dir, speedup=speedup, publish_interval_s=publish_interval_s,
                  models_dir=models_dir, heartbeat_interval_s=heartbeat_interval_s, filter=filter,
                  buffer=buffer, detect=detect, payload_format=payload_format, ca_file=ca_file)
    stop_event = stop_event or threading.Event()
    fleet.start()
    deadline = None if duration_s is None else time.time() + duration_s
    try:
        while not stop_event.is_set():
            remaining = None if deadline is None else deadline - time.time()
            if remaining is not None and remaining <= 0:
                break
            stop_event.wait(0.5 if remaining is None else min(0.5, remaining))
    finally:
        report = fleet.stop()
    return report
