"""Downgrade protection and key ids in the agent's deploy path (edge_node/agent/deploy.py and
versions.py), without Django: real downloads, real Ed25519 keys, real onnxruntime sessions."""

from __future__ import annotations

import base64
import json
import shutil

import pytest

from edge_node.agent.keyring import Keyring
from edge_node.agent.models import current_version
from edge_node.agent.versions import compare_versions
from tests.rollouts.agent_helpers import ArtifactServer, Signer, deploy_args, key_id, make_node, sign_command

GATES = {"max_p99_latency_ms": 50.0}  # agreement is not what these tests are about


@pytest.fixture
def server():
    with ArtifactServer({"n1": "s3cret"}) as srv:
        yield srv


def _ring(*signers: Signer) -> Keyring:
    return Keyring.from_b64({key_id(s): base64.b64encode(s.key.public_key().public_bytes_raw()).decode() for s in signers})


def test_versions_compare_by_their_numbers():
    assert compare_versions("2", "10") < 0 and compare_versions("1.10", "1.9") > 0
    assert compare_versions("3-int8", "3") > 0 and compare_versions("2024.05.1", "2024.05.1") == 0


def test_it_refuses_an_older_version_even_with_the_downgrade_flag_unless_the_command_is_signed(tmp_path, model_dirs, server):
    signer = Signer()
    node = make_node(tmp_path, model_dirs["v2"], server, signer)
    plain = {**deploy_args(server, signer, model_dirs["v1"], gates=GATES), "downgrade": True}
    node.manager.deploy("c1", plain, None)
    final = node.final()
    assert not final["ok"] and final["report"]["reason"] == "downgrade"
    assert "motor-anomaly@1 is older than the running 2" in final["detail"] and server.requests == 0  # refused before downloading
    forger = Signer()
    node.manager.deploy("c2", sign_command(forger, "n1", "c2", "deploy", plain), None)
    assert node.final()["report"]["reason"] == "unknown_signer"
    node.manager.deploy("c3", sign_command(signer, "n1", "c3", "deploy", plain), None)
    final = node.final()
    assert final["ok"] and final["report"]["downgrade"] is True and final["report"]["downgrade_from"] == "2"
    assert node.slot.model.version == "1" and current_version(node.models_dir, "motor-anomaly") == "1"


def test_it_refuses_another_artifact_under_the_running_version(tmp_path, model_dirs, server):
    signer = Signer()
    node = make_node(tmp_path, model_dirs["v1"], server, signer)
    other = tmp_path / "other" / "motor-anomaly" / "1"  # version 2's file, relabelled "1" (and validly signed)
    shutil.copytree(model_dirs["v2"], other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "version": "1"}))
    node.manager.deploy("c1", deploy_args(server, signer, other, gates=GATES), None)
    final = node.final()
    assert not final["ok"] and final["report"]["reason"] == "downgrade" and "different artifact" in final["detail"]
    # The same artifact again is no downgrade: it is simply what runs.
    node.manager.deploy("c2", deploy_args(server, signer, model_dirs["v1"], gates=GATES), None)
    assert node.final()["ok"] and node.slot.model.version == "1"


def test_a_model_without_a_key_id_verifies_against_any_trusted_key_but_never_a_revoked_one(tmp_path, model_dirs, server):
    first, second = Signer(), Signer()
    node = make_node(tmp_path, model_dirs["v1"], server, first)
    node.manager.keyring = _ring(first, second)
    node.manager.deploy("c1", deploy_args(server, second, model_dirs["v2"], gates=GATES), None)  # no key_id: an old artifact
    final = node.final()
    assert final["ok"] and final["report"]["signed_by"] == key_id(second)
    assert (node.models_dir / "motor-anomaly" / "2" / "signing_key").read_text() == key_id(second)
    node.manager.keyring.apply(1, {}, [key_id(first)])
    args = {**deploy_args(server, first, model_dirs["v3"], gates=GATES), "key_id": key_id(first)}
    node.manager.deploy("c2", args, None)
    assert node.final()["report"]["reason"] == "revoked_key"
    args.pop("key_id")
    node.manager.deploy("c3", args, None)
    assert node.final()["report"]["reason"] == "bad_signature"  # tried against the trusted keys only
    assert node.slot.model.version == "2"


def test_it_will_not_roll_back_to_a_version_signed_with_a_revoked_key(tmp_path, model_dirs, server):
    first, second = Signer(), Signer()
    node = make_node(tmp_path, model_dirs["v1"], server, first)
    node.manager.keyring = _ring(first, second)
    node.manager.deploy("c1", {**deploy_args(server, first, model_dirs["v2"], gates=GATES), "key_id": key_id(first)}, None)
    node.manager.deploy("c2", {**deploy_args(server, second, model_dirs["v3"], gates=GATES, model_id=3), "key_id": key_id(second)}, None)
    assert node.final()["ok"] and node.slot.model.version == "3"
    node.manager.keyring.apply(1, {}, [key_id(first)])
    node.manager.rollback("r1", sign_command(second, "n1", "r1", "rollback", {"name": "motor-anomaly", "version": "3", "to_version": "2"}))
    final = node.final()
    assert not final["ok"] and final["report"]["reason"] == "revoked_key" and key_id(first) in final["detail"]
    assert node.slot.model.version == "3" and current_version(node.models_dir, "motor-anomaly") == "3"
    # A forged rollback command (signed by an unknown key) is refused too.
    node.manager.rollback("r2", sign_command(Signer(), "n1", "r2", "rollback", {"name": "motor-anomaly", "version": "3"}))
    assert node.final()["report"]["reason"] == "unknown_signer" and node.slot.model.version == "3"
