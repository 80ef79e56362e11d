"""Fixtures for the edge agent's tests: the real broker, a subscriber per node, a proxy in
front of the broker that a test can cut, and a trained anomaly model."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def broker_url(mqtt_url) -> str:
    """The shared Mosquitto (tests/conftest.py: skipped when missing, a failure under
    AIOT_REQUIRE_SERVICES=1, which .ci/run sets)."""
    return mqtt_url


@pytest.fixture
def node_id() -> str:
    return f"t-agent-{uuid.uuid4().hex[:10]}"


class Subscriber:
    """Collects decoded messages of one node's topics (QoS 1). Standing in for the platform,
    it confirms every telemetry and event message it receives on the node's ``confirm`` topic
    (the contract's end-to-end delivery), unless ``confirm=False``."""

    def __init__(self, url: str, node: str, *, client_id: str | None = None, clean: bool = True,
                 confirm: bool = True) -> None:
        parts = urlsplit(url)
        self.node = node
        self.confirm = confirm
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
        body = contract.decode(msg.payload)
        with self.lock:
            self.messages.append((channel[1], body))
        if self.confirm and channel[1] in contract.CONFIRMED_CHANNELS and isinstance(body.get("seq"), int):
            confirmation = {channel[1]: contract.seq_ranges([body["seq"]])}
            client.publish(contract.topic(self.node, "confirm"), contract.encode(confirmation), qos=1)

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


class BrokerProxy:
    """A TCP proxy on a free port in front of the shared broker. ``stop()`` cuts every
    connection and leaves nothing listening (the agent sees the broker vanish);
    ``start()`` listens again. Subscribers talk to the broker directly, so nothing can be
    lost between the broker and them while the agent's link is down."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 1883)
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        srv.settimeout(0.1)
        self._listener = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def _accept(self, srv: socket.socket) -> None:
        # close() alone would not wake a blocked accept(), and the kernel would keep
        # listening: poll with a timeout and quit once this listener is no longer current.
        while self._listener is srv:
            try:
                client, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # stopped
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass  # the other side or stop() closed it
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

    def stop(self) -> None:
        if self._listener is not None:
            srv, self._listener = self._listener, None
            try:
                srv.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected: a listener may refuse shutdown
            srv.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed
            c.close()


@pytest.fixture
def broker_proxy(broker_url):
    proxy = BrokerProxy(broker_url)
    yield proxy
    proxy.stop()


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
