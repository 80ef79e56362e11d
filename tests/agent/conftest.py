"""Fixtures for the edge agent's tests: the real broker, a subscriber per node, a private
Mosquitto on a free port, and a trained anomaly model."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest

from edge_node.agent import contract
from tests.helpers import ROOT, free_port, wait_until

ALLOW_SKIP = os.environ.get("AIOT_ALLOW_SKIP") == "1"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def broker_url() -> str:
    """The shared Mosquitto. Unreachable means FAIL (the CI must not skip MQTT tests),
    unless AIOT_ALLOW_SKIP=1."""
    url = os.environ.get("MQTT_TEST_URL", "mqtt://127.0.0.1:1883")
    parts = urlsplit(url)
    if not _reachable(parts.hostname or "127.0.0.1", parts.port or 1883):
        reason = f"the edge agent's MQTT tests need a broker at {url} (start mosquitto or set MQTT_TEST_URL)"
        if ALLOW_SKIP:
            pytest.skip(reason)
        pytest.fail(reason, pytrace=False)
    return url


@pytest.fixture
def node_id() -> str:
    return f"t-agent-{uuid.uuid4().hex[:10]}"


class Subscriber:
    """Collects decoded messages of one node's topics (QoS 1)."""

    def __init__(self, url: str, node: str, *, client_id: str | None = None, clean: bool = True) -> None:
        parts = urlsplit(url)
        self.node = node
        self.messages: list[tuple[str, object]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"sub-{uuid.uuid4().hex[:8]}",
                                  clean_session=clean, protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()
        wait_until(self.subscribed.is_set, 10, what="the subscription")

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        client.subscribe(f"{contract.TOPIC_PREFIX}/{self.node}/#", qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        channel = contract.parse_topic(msg.topic)
        if channel is None or not msg.payload:
            return
        with self.lock:
            self.messages.append((channel[1], contract.decode(msg.payload)))

    def of(self, channel: str) -> list:
        with self.lock:
            return [p for c, p in self.messages if c == channel]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribe():
    subs: list[Subscriber] = []

    def make(url: str, node: str, **kwargs) -> Subscriber:
        s = Subscriber(url, node, **kwargs)
        subs.append(s)
        return s

    yield make
    for s in subs:
        s.close()


class PrivateBroker:
    """A Mosquitto of our own on a free port, with persistence, that a test can stop and restart."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("mosquitto") is None:
            pytest.fail("mosquitto is not installed (apt-get install mosquitto)", pytrace=False)
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {workdir}/\nlog_dest none\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(lambda: _reachable("127.0.0.1", self.port), 10, what=f"mosquitto on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # SIGTERM: mosquitto saves its sessions
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def private_broker(tmp_path):
    broker = PrivateBroker(tmp_path / "mosquitto")
    yield broker
    broker.stop()


def start_agent_process(config: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "edge_node.agent", "run", "--config", str(config), "--log-level",
                             "WARNING"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="session")
def motor_models(tmp_path_factory) -> Path:
    """A models dir holding a freshly trained induction_motor-anomaly model (version 1)."""
    from edge_node.agent.train_anomaly import train_anomaly_model

    out = tmp_path_factory.mktemp("models")
    train_anomaly_model("induction_motor", out, n_windows=800, n_estimators=50)
    return out
