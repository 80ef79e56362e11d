"""mqtts:// with a CA file: the agent verifies the broker's certificate."""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from edge_node.agent.agent import Agent
from edge_node.agent.config import AgentConfig, BrokerConfig, SourceConfig
from tests.conftest import _missing
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.mqtt


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def tls_broker(tmp_path):
    for tool in ("openssl", "mosquitto"):
        if shutil.which(tool) is None:
            _missing(f"needs {tool} for a TLS broker")
    d = tmp_path / "tls"
    d.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
            "-out", "server.csr", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=d)
    port = free_port()
    (d / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\ncafile {d}/ca.pem\ncertfile {d}/server.pem\n"
        # user root: as root, mosquitto would otherwise drop to a user that cannot read
        # pytest's private tmp dir (ignored when not run as root).
        f"keyfile {d}/server.key\nlog_dest none\nuser root\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(d / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_until(lambda: _listening(port), 10, what="the TLS broker")
    yield port, d
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def agent_over_tls(tmp_path: Path, port: int, ca: Path) -> Agent:
    # No platform confirms here: the outbox empties on the TLS broker's PUBACKs ("broker" delivery).
    cfg = AgentConfig(node_id="t-tls", broker=BrokerConfig(url=f"mqtts://127.0.0.1:{port}", ca_file=ca),
                      state_dir=tmp_path / "state", publish_interval_s=0.2, delivery="broker",
                      sources=[SourceConfig("hvac_unit", "h1", sample_interval_s=0.1)])
    return Agent(cfg)


def run_until(agent: Agent, predicate, timeout: float) -> bool:
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    runner.start()
    try:
        wait_until(predicate, timeout, what="the agent over TLS")
        return True
    finally:
        stop.set()
        runner.join(10)


def test_the_agent_publishes_over_tls_verified_by_its_ca(tls_broker, tmp_path):
    port, d = tls_broker
    agent = agent_over_tls(tmp_path, port, d / "ca.pem")
    assert run_until(agent, lambda: agent.link.connected and agent.stats.batches >= 3 and agent.outbox.depth == 0, 15)


def test_the_agent_refuses_a_broker_its_ca_did_not_sign(tls_broker, tmp_path):
    port, _ = tls_broker
    d2 = tmp_path / "other"
    d2.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=other-ca",
            "-keyout", "o.key", "-out", "other.pem", cwd=d2)
    agent = agent_over_tls(tmp_path, port, d2 / "other.pem")
    # It keeps buffering and never connects.
    assert run_until(agent, lambda: agent.stats.batches >= 5, 15)
    assert not agent.link.connected and agent.link.connects == 0
    assert agent.outbox.depth >= 5
