"""Artifacts every process can read: a web process on another host (its own, empty
AIOT_VAR_DIR) serves a model download, byte for byte, and the signature verifies."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from edge_node import signing_keys
from edge_node.agent import artifact
from edge_node.credentials import hash_secret
from edge_node.models import EdgeNode
from edge_node.rollouts import const
from edge_node.rollouts.models import Rollout, RolloutNode
from edge_node.rollouts.registry import register_anomaly_model
from tests.factories import make_site
from tests.helpers import ROOT, database_url_for_subprocess, free_port, wait_until

pytestmark = pytest.mark.slow


def test_a_web_process_on_another_host_serves_the_signed_download(transactional_db, registry_settings, model_dirs, admin_user, tmp_path, unique):
    node = EdgeNode.objects.create(node_id=f"far-{unique}", site=make_site(), secret_hash=hash_secret("node-secret"), online=True)
    model = register_anomaly_model(model_dirs["v2"])
    rollout = Rollout.objects.create(model=model, proposer=admin_user, approver=admin_user, state=const.CANARY)
    RolloutNode.objects.create(rollout=rollout, node=node)
    Path(model.file_path).unlink()  # the host that registered it is not this one: no file to read here
    other_host = tmp_path / "other-host-var"
    other_host.mkdir()
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url_for_subprocess(), AIOT_VAR_DIR=str(other_host), ALLOWED_HOSTS="127.0.0.1")
    env.pop("REDIS_URL", None)
    web = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "web.asgi:application"],
                           cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up() -> bool:
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200
            except OSError:
                return False

        wait_until(up, 30, what="the other host's web process")
        auth = base64.b64encode(f"{node.node_id}:node-secret".encode()).decode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/models/{model.pk}/download", headers={"Authorization": f"Basic {auth}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            data = resp.read()
    finally:
        web.terminate()
        web.wait(20)
    assert len(data) == model.size
    artifact.verify_artifact(data, model.manifest(), model.signature, signing_keys.public_key_pem())  # raises if not
    assert list(other_host.rglob("model.onnx")), "the other host keeps its copy for the next download"
