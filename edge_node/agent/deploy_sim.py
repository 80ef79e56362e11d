"""Many simulated nodes in one process that take model deployments exactly as a gateway does:
each node has its own models dir, ModelSlot and DeployManager (download with its credentials,
verify, install, shadow run, switch, rollback); commands and acks go over one MQTT connection
on each node's own topics. Live windows come from a seeded generator around the training data.

Used by tests/rollouts and bench/rollout.py. No Django.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import paho.mqtt.client as mqtt

from . import contract
from .config import PlatformConfig
from .deploy import DeployManager
from .keyring import Keyring, KeyringCommands
from .models import AnomalyModel, ModelSlot, current_version, load_model, set_current

log = logging.getLogger(__name__)


class SharedLoader:
    """Loads a model once per identical file (by SHA-256), so 500 nodes share one session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, AnomalyModel] = {}

    def __call__(self, models_dir: Path, name: str, version: str) -> AnomalyModel:
        digest = hashlib.sha256((Path(models_dir) / name / version / "model.onnx").read_bytes()).hexdigest()
        with self._lock:
            model = self._cache.get(digest + version)
            if model is None:
                model = self._cache[digest + version] = load_model(models_dir, name, version)
            return model


@dataclass
class SimNode:
    node_id: str
    models_dir: Path
    slot: ModelSlot
    manager: DeployManager = field(repr=False)
    rows: np.ndarray = field(repr=False)
    keyring_commands: KeyringCommands | None = field(default=None, repr=False)

    @property
    def version(self) -> str:
        return self.slot.model.version


class SimDeployFleet:
    def __init__(self, broker_url: str, platform_url: str, public_pem: str, secrets: dict[str, str], seed_model: Path,
                 root: Path, *, workers: int = 4, live_rows: Callable[[int], np.ndarray] | None = None,
                 model_keys: dict[str, str] | None = None) -> None:
        """``seed_model`` is a version folder (model.onnx + meta.json) every node starts with;
        each node pins ``public_pem`` and ``model_keys`` (id -> base64) in its own keyring."""
        self.root = Path(root)
        self.loader = SharedLoader()
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sim-deploy")
        self.nodes: dict[str, SimNode] = {}
        self.acks: list[tuple[str, dict[str, Any]]] = []
        self._acks_lock = threading.Lock()
        seed_model = Path(seed_model)
        name, version = seed_model.parent.name, seed_model.name
        for i, (node_id, secret) in enumerate(sorted(secrets.items())):
            models_dir = self.root / node_id
            shutil.copytree(seed_model, models_dir / name / version)
            set_current(models_dir, name, version)
            slot = ModelSlot(self.loader(models_dir, name, version))
            rows = live_rows(i) if live_rows else np.random.default_rng(i).normal(0.0, 1.0, (50, len(slot.model.features))).astype(np.float32)
            platform = PlatformConfig(url=platform_url, node_secret=secret, model_public_key=public_pem, model_keys=dict(model_keys or {}))
            keyring = Keyring.for_platform(None, public_pem, platform.model_keys)
            node = SimNode(node_id, models_dir, slot, None, rows, KeyringCommands(node_id, keyring))  # type: ignore[arg-type]
            node.manager = DeployManager(node_id, models_dir, platform, publish_ack=self._publisher(node_id),
                                         slot_for=lambda n, slot=slot: slot if slot.model.name == n else None,
                                         live_rows=lambda n, f, rows=rows: rows, executor=self.executor, loader=self.loader,
                                         keyring=keyring)
            self.nodes[node_id] = node
        parts = urlsplit(broker_url)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-deploy-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311)
        if parts.username:
            self.client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 1883
        self._ready = threading.Event()

    def _publisher(self, node_id: str) -> Callable[[dict[str, Any]], None]:
        def publish(ack: dict[str, Any]) -> None:
            with self._acks_lock:
                self.acks.append((node_id, ack))
            info = self.client.publish(contract.topic(node_id, "cmd/ack"), contract.encode(ack), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise OSError(f"ack publish failed: {mqtt.error_string(info.rc)}")
        return publish

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        topics = [(contract.topic(n, "cmd"), 1) for n in self.nodes]
        for i in range(0, len(topics), 100):
            client.subscribe(topics[i:i + 100])
        self._ready.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        parsed = contract.parse_topic(message.topic)
        if parsed is None or parsed[0] not in self.nodes:
            return
        try:
            cmd = contract.decode(message.payload)
            node = self.nodes[parsed[0]]
            if node.keyring_commands is not None and node.keyring_commands.handles(str(cmd["type"])):
                self._publisher(node.node_id)(node.keyring_commands.handle(str(cmd["id"]), cmd.get("args") or {}))
                return
            node.manager.submit(str(cmd["id"]), str(cmd["type"]), cmd.get("args") or {})
        except (contract.PayloadError, KeyError, TypeError, AttributeError) as exc:
            log.warning("sim node %s: unreadable command: %s", parsed[0], exc)
        except OSError as exc:
            log.warning("sim node %s: ack not sent: %s", parsed[0], exc)

    def publish_status(self, node_id: str, state: str = "online") -> None:
        node = self.nodes[node_id]
        payload = {"state": state, "versions": {f"model:{node.slot.model.name}": node.version}}
        self.client.publish(contract.topic(node_id, "status"), contract.encode(payload), qos=1)

    def start(self, timeout: float = 10.0) -> SimDeployFleet:
        self.client.connect_async(self._host, self._port, keepalive=30)
        self.client.loop_start()
        if not self._ready.wait(timeout):
            self.stop()
            raise OSError(f"simulated fleet cannot reach the broker at {self._host}:{self._port}")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.executor.shutdown(wait=True, cancel_futures=True)

    def versions(self) -> dict[str, str]:
        """What each node runs: in memory and on disk (they must agree)."""
        return {n: node.version for n, node in self.nodes.items()}

    def summary(self) -> dict[str, Any]:
        """How many nodes run each version, and how many are deploying right now."""
        versions: dict[str, int] = {}
        for node in self.nodes.values():
            versions[node.version] = versions.get(node.version, 0) + 1
        return {"versions": versions, "busy": sum(1 for n in self.nodes.values() if n.manager.busy > 0)}

    def disk_versions(self) -> dict[str, str]:
        return {n: current_version(node.models_dir, node.slot.model.name) for n, node in self.nodes.items()}

    def final_acks(self, node_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        with self._acks_lock:
            return [(n, a) for n, a in self.acks if (a.get("report") or {}).get("final") and (node_id is None or n == node_id)]


def _fleet_main(conn: Any, args: tuple, kwargs: dict[str, Any]) -> None:
    """The child side of FleetProcess: run a SimDeployFleet and answer the parent's questions."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        fleet = SimDeployFleet(*args, **kwargs).start()
    except Exception as exc:  # the parent shows it and stops
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", len(fleet.nodes)))
    try:
        while True:
            request = conn.recv()
            if request == "summary":
                conn.send(fleet.summary())
            elif request == "versions":
                conn.send(fleet.versions())
            elif request == "disk_versions":
                conn.send(fleet.disk_versions())
            else:
                break
    except EOFError:
        pass  # the parent went away
    finally:
        fleet.stop()


class FleetProcess:
    """A SimDeployFleet in a child process: its own interpreter (and GIL), as gateways have their
    own CPUs, so the simulated nodes' work does not queue behind the platform's in one process.
    ``summary()`` says how many nodes run each version and how many are deploying right now."""

    def __init__(self, broker_url: str, platform_url: str, public_pem: str, secrets: dict[str, str], seed_model: Path,
                 root: Path, *, workers: int = 4) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads running
        self._conn, child = ctx.Pipe()
        self.nodes = len(secrets)
        self.process = ctx.Process(target=_fleet_main, name="sim-fleet", daemon=True,
                                   args=(child, (broker_url, platform_url, public_pem, secrets, seed_model, root), {"workers": workers}))
        self._lock = threading.Lock()

    def start(self, timeout: float = 120.0) -> FleetProcess:
        self.process.start()
        if not self._conn.poll(timeout):
            self.stop()
            raise OSError(f"simulated fleet process not ready within {timeout:g} s")
        kind, detail = self._conn.recv()
        if kind != "ready":
            self.stop()
            raise OSError(f"simulated fleet process failed: {detail}")
        return self

    def _ask(self, what: str) -> Any:
        with self._lock:
            self._conn.send(what)
            return self._conn.recv()

    def summary(self) -> dict[str, Any]:
        return self._ask("summary")

    def versions(self) -> dict[str, str]:
        return self._ask("versions")

    def disk_versions(self) -> dict[str, str]:
        return self._ask("disk_versions")

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.is_alive():
            try:
                with self._lock:
                    self._conn.send("stop")
            except OSError:
                pass  # the child is gone already
            self.process.join(timeout)
        if self.process.is_alive():
            log.warning("simulated fleet process %s did not stop within %g s; terminating it", self.process.pid, timeout)
            self.process.terminate()
            self.process.join(5)
