"""The agent's side of a rollout (edge_node/agent/deploy.py), without Django: real HTTP
downloads, real Ed25519 keys, real onnxruntime sessions, a real crash in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from edge_node.agent.deploy import CRASH_ENV, PREVIOUS_POINTER, read_pointer
from edge_node.agent.models import current_version, load_model
from tests.helpers import ROOT, wait_until
from tests.rollouts.agent_helpers import ArtifactServer, Signer, deploy_args, make_node, sign_command, slow_loader


@pytest.fixture
def server():
    with ArtifactServer({"n1": "s3cret"}) as srv:
        yield srv


@pytest.fixture
def signer():
    return Signer()


def test_it_downloads_verifies_shadows_and_switches(tmp_path, model_dirs, server, signer):
    node = make_node(tmp_path, model_dirs["v1"], server, signer)
    node.manager.deploy("c1", deploy_args(server, signer, model_dirs["v2"]), node.manager.live_rows("motor-anomaly", []))
    final = node.final()
    assert final["ok"], final
    assert [a["report"]["stage"] for a in node.acks] == ["downloading", "verifying", "shadow", "switched"]
    assert final["report"]["version"] == "2" and final["report"]["previous_version"] == "1"
    assert final["report"]["windows"] == 120 and final["report"]["agreement"] >= 0.8
    assert node.slot.model.version == "2"
    assert current_version(node.models_dir, "motor-anomaly") == "2"
    assert read_pointer(node.models_dir, "motor-anomaly", PREVIOUS_POINTER) == "1"
    assert (node.models_dir / "motor-anomaly" / "1" / "model.onnx").is_file()  # kept for rollback


def test_it_refuses_a_tampered_artifact_and_never_installs_it(tmp_path, model_dirs, server, signer):
    node = make_node(tmp_path, model_dirs["v1"], server, signer)
    good = (model_dirs["v2"] / "model.onnx").read_bytes()
    tampered = good[:-8] + bytes(8)
    node.manager.deploy("c1", deploy_args(server, signer, model_dirs["v2"], serve=tampered), None)
    final = node.final()
    assert not final["ok"] and final["report"]["reason"] == "hash_mismatch"
    assert "refused motor-anomaly@2" in final["detail"]
    assert not (node.models_dir / "motor-anomaly" / "2").exists()
    assert node.slot.model.version == "1" and current_version(node.models_dir, "motor-anomaly") == "1"


def test_it_refuses_a_signature_from_another_key(tmp_path, model_dirs, server, signer):
    node = make_node(tmp_path, model_dirs["v1"], server, signer)
    forger = Signer()
    node.manager.deploy("c1", deploy_args(server, forger, model_dirs["v2"]), None)
    final = node.final()
    assert not final["ok"] and final["report"]["reason"] == "bad_signature"
    assert node.slot.model.version == "1" and not (node.models_dir / "motor-anomaly" / "2").exists()


def test_it_refuses_a_manifest_changed_after_signing(tmp_path, model_dirs, server, signer):
    node = make_node(tmp_path, model_dirs["v1"], server, signer)
    args = deploy_args(server, signer, model_dirs["v2"])
    args["manifest"]["meta"]["threshold"] = 99.0  # signed metadata edited in transit
    node.manager.deploy("c1", args, None)
    assert node.final()["report"]["reason"] == "bad_signature"


def test_it_refuses_everything_without_a_pinned_key(tmp_path, model_dirs, server, signer):
    node = make_node(tmp_path, model_dirs["v1"], server, signer, public_pem="")
    node.manager.deploy("c1", deploy_args(server, signer, model_dirs["v2"]), None)
    assert node.final()["report"]["reason"] == "no_public_key"


def test_it_reports_a_download_refused_by_the_platform(tmp_path, model_dirs, server, signer):
    node = make_node(tmp_path, model_dirs["v1"], server, signer, secret="wrong")
    node.manager.deploy("c1", deploy_args(server, signer, model_dirs["v2"]), None)
    final = node.final()
    assert final["report"]["reason"] == "download_failed" and "HTTP 401" in final["detail"]


def test_it_keeps_the_current_model_when_a_gate_fails(tmp_path, model_dirs, server, signer):
    node = make_node(tmp_path, model_dirs["v1"], server, signer)
    rows = node.manager.live_rows("motor-anomaly", [])
    node.manager.deploy("c1", deploy_args(server, signer, model_dirs["v2"], gates={"max_p99_latency_ms": 0.0001}), rows)
    slow = node.final()
    assert slow["report"]["reason"] == "latency_gate" and slow["report"]["latency_p99_ms"] > 0.0001
    node.manager.deploy("c2", deploy_args(server, signer, model_dirs["v3"], gates={"min_agreement": 0.9}), rows)
    disagrees = node.final()
    assert disagrees["report"]["reason"] == "agreement_gate" and disagrees["report"]["agreement"] < 0.9
    assert node.slot.model.version == "1" and current_version(node.models_dir, "motor-anomaly") == "1"


def test_it_rolls_back_to_the_previous_model(tmp_path, model_dirs, server, signer):
    node = make_node(tmp_path, model_dirs["v1"], server, signer)
    node.manager.deploy("c1", deploy_args(server, signer, model_dirs["v2"]), None)
    assert node.slot.model.version == "2"
    node.manager.rollback("c1u", {"name": "motor-anomaly", "version": "2"})  # unsigned: it would put an older model back
    assert node.final()["report"]["reason"] == "unsigned" and node.slot.model.version == "2"
    node.manager.rollback("c2", sign_command(signer, "n1", "c2", "rollback", {"name": "motor-anomaly", "version": "2"}))
    final = node.final()
    assert final["ok"] and final["report"] == {"stage": "rolled_back", "final": True, "version": "1"}
    assert node.slot.model.version == "1" and current_version(node.models_dir, "motor-anomaly") == "1"
    # Again: nothing to do, still fine.
    node.manager.rollback("c3", sign_command(signer, "n1", "c3", "rollback", {"name": "motor-anomaly", "version": "2"}))
    assert node.final()["ok"] and node.slot.model.version == "1"


def test_it_handles_commands_in_its_pool_and_ignores_a_redelivery(tmp_path, model_dirs, server, signer):
    node = make_node(tmp_path, model_dirs["v1"], server, signer)
    args = deploy_args(server, signer, model_dirs["v2"])
    node.manager.submit("c1", "deploy", args)
    wait_until(lambda: any(a["report"].get("final") for a in node.acks), timeout=20, what="final ack")
    node.manager.submit("c1", "deploy", args)
    assert server.requests == 1 and node.slot.model.version == "2"


CRASHING_DEPLOY = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from edge_node.agent.config import PlatformConfig
    from edge_node.agent.deploy import DeployManager
    models_dir, url, pem, args = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    m = DeployManager("n1", Path(models_dir), PlatformConfig(url=url, node_secret="s3cret", model_public_key=pem),
                      publish_ack=lambda a: None, slot_for=lambda n: None, live_rows=lambda n, f: None)
    m.deploy("c1", args, None)
    print("survived")
""")


@pytest.mark.parametrize("checkpoint", ["before_version_rename", "before_current_rename"])
def test_it_restarts_on_the_previous_model_after_a_crash_during_the_switch(tmp_path, model_dirs, server, signer, checkpoint):
    import json

    node = make_node(tmp_path, model_dirs["v1"], server, signer)
    args = deploy_args(server, signer, model_dirs["v2"])
    env = {**os.environ, CRASH_ENV: checkpoint, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", CRASHING_DEPLOY, str(node.models_dir), server.url, signer.public_pem, json.dumps(args)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 70, proc.stderr[-2000:]
    assert "survived" not in proc.stdout
    restarted = load_model(node.models_dir, "motor-anomaly")  # what the agent loads when it starts again
    assert restarted.version == "1"
    # The next deploy of the same version completes over the leftovers.
    node.manager.deploy("c2", args, None)
    assert node.final()["ok"] and current_version(node.models_dir, "motor-anomaly") == "2"


def test_it_measures_again_before_a_slow_shadow_run_counts(tmp_path, model_dirs, server, signer):
    # The host was busy during the first shadow run only (its warm-up call and 120 windows): the second run passes.
    node = make_node(tmp_path, model_dirs["v1"], server, signer)
    node.manager.loader = slow_loader("2", 0.002, slow_calls=121)
    node.manager.deploy("c1", deploy_args(server, signer, model_dirs["v2"], gates={"max_p99_latency_ms": 1.5, "max_latency_ratio": 3.0}),
                        node.manager.live_rows("motor-anomaly", []))
    final = node.final()
    assert final["ok"] and final["report"]["remeasured"] is True and final["report"]["first_latency_p99_ms"] > 1.5
    assert final["report"]["latency_p99_ms"] < 1.5 and node.slot.model.version == "2"


def test_it_refuses_a_model_much_slower_than_the_current_one_under_a_generous_ceiling(tmp_path, model_dirs, server, signer):
    node = make_node(tmp_path, model_dirs["v1"], server, signer)
    node.manager.loader = slow_loader("2", 0.003)
    node.manager.deploy("c1", deploy_args(server, signer, model_dirs["v2"], gates={"max_p99_latency_ms": 50.0, "max_latency_ratio": 3.0}),
                        node.manager.live_rows("motor-anomaly", []))
    final = node.final()
    report = final["report"]
    assert not final["ok"] and report["reason"] == "latency_gate" and report["remeasured"] is True
    assert report["latency_p99_ms"] < 50.0 and report["latency_ratio"] > 3.0 and "the current model's" in final["detail"]
    assert node.slot.model.version == "1"
