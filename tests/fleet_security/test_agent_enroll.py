"""The agent's `enroll` command against a live platform, and the config it writes."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import tomllib

import pytest

from edge_node.agent.config import load_config
from edge_node.agent.enroll import dump_toml, merge_identity
from edge_node.models import AuditEvent, EdgeNode
from edge_node.services import authenticate_node, create_enrollment_token
from edge_node.signing_keys import public_key_pem
from tests.factories import make_site
from tests.helpers import ROOT

EXAMPLE = ROOT / "edge_node" / "agent" / "node.example.toml"


def run_enroll(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_node.agent", "enroll", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.django_db(transaction=True)
def test_it_enrolls_with_the_real_cli_into_an_existing_config(live_server, tmp_path):
    config = tmp_path / "node.toml"
    shutil.copy(EXAMPLE, config)
    config.chmod(0o644)
    _, token = create_enrollment_token(make_site(), node_id="gw-cli-1")

    done = run_enroll("--url", live_server.url, "--token", token, "--config", str(config))

    assert done.returncode == 0, done.stderr
    assert "enrolled as node gw-cli-1" in done.stdout
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    cfg = load_config(config)  # the agent accepts what enroll wrote
    assert cfg.node_id == "gw-cli-1" and cfg.username == "gw-cli-1" and cfg.password
    assert cfg.broker.url == "mqtts://broker.example.com:8883"
    assert cfg.platform.model_public_key == public_key_pem()
    # The keyring is pinned beside node.toml, owner-only like the secret, and the agent reads it.
    keyring = tmp_path / "keyring.json"
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600 and cfg.platform.keyring_file == keyring
    assert tomllib.loads(config.read_text())["platform"].keys() == {"url", "node_secret", "model_public_key"}
    from edge_node.signing_keys import active_key_id, public_key_base64

    assert json.loads(keyring.read_text()) == {"version": 0, "keys": {active_key_id(): public_key_base64()}, "revoked": []}
    assert cfg.platform.url == live_server.url
    assert authenticate_node("gw-cli-1", cfg.platform.node_secret) == EdgeNode.objects.get(node_id="gw-cli-1")
    assert [s.asset for s in cfg.sources] == ["motor-101", "pump-201", "ahu-1", "engine-7"]  # the rest is kept
    assert cfg.filter.metrics["vib_kurtosis"].aggregate == "max"

    # The same token again: refused, the message shown, the config untouched.
    before = config.read_bytes()
    again = run_enroll("--url", live_server.url, "--token", token, "--config", str(config))
    assert again.returncode == 4
    assert "enrollment token already used" in again.stderr
    assert config.read_bytes() == before
    assert AuditEvent.objects.filter(ok=False, detail__error="token_used").count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_creates_a_private_config_when_there_is_none(live_server, tmp_path):
    config = tmp_path / "new" / "node.toml"
    _, token = create_enrollment_token(make_site())
    done = run_enroll("--url", live_server.url + "/", "--token", token, "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    data = tomllib.loads(config.read_text())
    assert data["node"]["id"] == data["node"]["username"] and data["node"]["password"]
    assert data["platform"]["model_public_key"].startswith("-----BEGIN PUBLIC KEY-----")


def test_it_exits_with_the_reason_when_the_platform_is_unreachable(tmp_path):
    from tests.helpers import free_port

    done = run_enroll("--url", f"http://127.0.0.1:{free_port()}", "--token", "aiot-enroll-x", "--config", str(tmp_path / "n.toml"))
    assert done.returncode == 4
    assert "cannot reach" in done.stderr
    assert not (tmp_path / "n.toml").exists()


def test_it_round_trips_node_toml_through_its_writer():
    original = tomllib.loads(EXAMPLE.read_text())
    answer = {"node_id": "gw-rt", "secret": 's"e\\c\nret', "model_public_key": "-----BEGIN PUBLIC KEY-----\nAAA=\n-----END PUBLIC KEY-----\n",
              "mqtt": {"url": "mqtt://b:1883", "username": "gw-rt", "password": "p w=ü"}}
    merged = merge_identity(original, answer, "https://platform.example")
    assert tomllib.loads(dump_toml(merged)) == merged
    assert merged["sources"] == original["sources"] and merged["filter"] == original["filter"]


def test_the_ca_that_verified_the_platform_also_verifies_the_tls_broker(tmp_path):
    answer = {"node_id": "gw-ca", "secret": "s", "model_public_key": "k", "mqtt": {"url": "mqtts://b.example:8883", "username": "gw-ca", "password": "p"}}
    ca = tmp_path / "ca.pem"
    merged = merge_identity({}, answer, "https://aiot.example", str(ca))
    assert merged["broker"]["ca_file"] == str(ca.resolve())
    own = merge_identity({"broker": {"ca_file": "/etc/other-ca.pem"}}, answer, "https://aiot.example", str(ca))
    assert own["broker"]["ca_file"] == "/etc/other-ca.pem"  # a CA the node.toml names is kept
    plain = merge_identity({}, {**answer, "mqtt": {**answer["mqtt"], "url": "mqtt://b.example:1883"}}, "https://aiot.example", str(ca))
    assert "ca_file" not in plain["broker"]
