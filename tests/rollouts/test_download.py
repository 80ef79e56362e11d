"""The node-facing artifact download: node credentials, only models a running rollout sends it."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from edge_node.credentials import hash_secret
from edge_node.models import AuditEvent, EdgeNode
from edge_node.rollouts import const
from edge_node.rollouts.actions import approve_rollout, propose_rollout
from edge_node.rollouts.models import Rollout
from edge_node.rollouts.registry import register_anomaly_model
from edge_node.services import revoke_node
from tests.factories import make_site

pytestmark = pytest.mark.django_db


def _basic(node_id: str, secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{node_id}:{secret}".encode()).decode()}


@pytest.fixture
def running(registry_settings, model_dirs, admin_user, second_admin, unique, django_capture_on_commit_callbacks):
    site = make_site()
    node = EdgeNode.objects.create(node_id=f"dl-{unique}", site=site, secret_hash=hash_secret("node-secret"), online=True)
    outsider = EdgeNode.objects.create(node_id=f"dl-{unique}-x", site=make_site(), secret_hash=hash_secret("other"), online=True)
    model = register_anomaly_model(model_dirs["v2"])
    rollout = propose_rollout(admin_user, model, node_ids=[node.node_id])
    with django_capture_on_commit_callbacks(execute=False):
        approve_rollout(second_admin, rollout)
    Rollout.objects.filter(pk=rollout.pk).update(state=const.CANARY)
    return node, outsider, model


def test_it_serves_the_signed_file_to_a_targeted_node(client, running):
    node, _, model = running
    resp = client.get(f"/api/models/{model.pk}/download", **_basic(node.node_id, "node-secret"))
    assert resp.status_code == 200 and resp["X-Model-Sha256"] == model.sha256
    assert b"".join(resp.streaming_content) == Path(model.file_path).read_bytes()


def test_it_refuses_missing_or_wrong_credentials(client, running):
    node, _, model = running
    assert client.get(f"/api/models/{model.pk}/download").status_code == 401
    resp = client.get(f"/api/models/{model.pk}/download", **_basic(node.node_id, "guess"))
    assert resp.status_code == 401 and "Basic" in resp["WWW-Authenticate"]


def test_it_refuses_a_node_the_rollout_does_not_target(client, running):
    _, outsider, model = running
    assert client.get(f"/api/models/{model.pk}/download", **_basic(outsider.node_id, "other")).status_code == 404
    assert AuditEvent.objects.filter(action=const.AUDIT_ARTIFACT_DOWNLOAD, actor=outsider.node_id, ok=False).exists()


def test_it_refuses_a_revoked_node(client, running):
    node, _, model = running
    revoke_node(node, actor="admin1")
    assert client.get(f"/api/models/{model.pk}/download", **_basic(node.node_id, "node-secret")).status_code == 401


def test_a_legacy_scrypt_hash_is_moved_to_the_keyed_hash_on_first_use(client, running):
    node, _, model = running
    assert node.secret_hash.startswith("scrypt$")
    assert client.get(f"/api/models/{model.pk}/download", **_basic(node.node_id, "node-secret")).status_code == 200
    node.refresh_from_db()
    assert node.secret_hash.startswith("hmac-sha256$") and "node-secret" not in node.secret_hash
    # The migrated hash keeps working, and still refuses a wrong secret.
    assert client.get(f"/api/models/{model.pk}/download", **_basic(node.node_id, "node-secret")).status_code == 200
    assert client.get(f"/api/models/{model.pk}/download", **_basic(node.node_id, "node-secreT")).status_code == 401


def test_wrong_credentials_lock_out_the_address_before_any_check(client, running, settings):
    node, _, model = running
    settings.THROTTLE_MAX_FAILURES = 3
    for i in range(3):
        assert client.get(f"/api/models/{model.pk}/download", REMOTE_ADDR="198.51.100.20", **_basic(f"nobody-{i}", "guess")).status_code == 401
    locked = client.get(f"/api/models/{model.pk}/download", REMOTE_ADDR="198.51.100.20", **_basic(node.node_id, "node-secret"))
    assert locked.status_code == 429 and locked.json()["code"] == "rate_limited"
    # The real node from its own address is not affected.
    assert client.get(f"/api/models/{model.pk}/download", **_basic(node.node_id, "node-secret")).status_code == 200
    assert AuditEvent.objects.filter(action="throttle.lockout", target="node-api:198.51.100.20").exists()


def test_guessing_against_a_real_node_id_does_not_lock_the_node_out(client, running, settings):
    node, _, model = running
    settings.THROTTLE_MAX_FAILURES = 3
    for _ in range(5):
        client.get(f"/api/models/{model.pk}/download", REMOTE_ADDR="198.51.100.21", **_basic(node.node_id, "guess"))
    assert client.get(f"/api/models/{model.pk}/download", REMOTE_ADDR="198.51.100.22", **_basic(node.node_id, "node-secret")).status_code == 200


def test_it_refuses_a_model_whose_signing_key_was_revoked_meanwhile(client, running):
    from edge_node.key_rotation import rotate_signing_keys

    node, _, model = running
    rotate_signing_keys(actor="test", revoke_previous=True, reason="key leaked")
    resp = client.get(f"/api/models/{model.pk}/download", **_basic(node.node_id, "node-secret"))
    assert resp.status_code == 403 and f"signed with model-signing key {model.signing_key_id}, which is revoked" in resp.json()["error"]
    refusal = AuditEvent.objects.get(action=const.AUDIT_ARTIFACT_DOWNLOAD, actor=node.node_id, ok=False)
    assert "which is revoked" in refusal.detail["reason"]


def test_the_model_page_names_the_signing_key_and_says_when_it_is_revoked(client, running, admin_user):
    from edge_node.key_rotation import rotate_signing_keys

    _, _, model = running
    client.force_login(admin_user)
    page = client.get(f"/model-registry/{model.pk}/").content.decode()
    assert f"<strong>verifies</strong> against the platform's key <code>{model.signing_key_id}</code>" in page
    rotate_signing_keys(actor="test", revoke_previous=True)
    page = client.get(f"/model-registry/{model.pk}/").content.decode()
    assert "does NOT verify" in page and f"signed with key <code>{model.signing_key_id}</code>, which is revoked" in page
