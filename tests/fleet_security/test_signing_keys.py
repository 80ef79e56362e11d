"""The platform's model-signing keys: ids, stored encrypted where every host reads them, rotated by
an admin (page and manage.py; role-checked and audited), revoked keys refused when serving."""

from __future__ import annotations

import base64
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from edge_node import const, signing_keys
from edge_node.agent.keyring import key_id_of
from edge_node.key_rotation import RotationError, keyring_command, rotate_signing_keys
from edge_node.models import AuditEvent, EdgeNode, SigningKey
from edge_node.services import create_enrollment_token
from tests.factories import make_site

pytestmark = pytest.mark.django_db


def test_the_first_key_is_the_key_file_and_its_private_half_is_stored_encrypted(settings):
    key = signing_keys.active_key()
    from cryptography.hazmat.primitives import serialization

    on_disk = serialization.load_pem_private_key(signing_keys.signing_key_path().read_bytes(), password=None)
    assert key.key_id == key_id_of(signing_keys.raw_public(on_disk)) and key.state == const.KEY_ACTIVE
    assert key.private_key.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError):  # no key in the database without the passphrase
        serialization.load_pem_private_key(key.private_key.encode(), password=None)


def test_another_host_signs_with_the_same_keys_without_any_key_file(settings, tmp_path):
    rotated = rotate_signing_keys(actor="test")
    settings.VAR_DIR = tmp_path / "other-host"  # a second host: nothing of the first one's disk
    signing_keys._decrypt.cache_clear()
    signature = signing_keys.sign(b"a manifest")
    assert signing_keys.active_key_id() == rotated.key_id
    assert signing_keys.verify(b"a manifest", signature, signing_keys.public_key_pem())
    assert not (tmp_path / "other-host").exists()


def test_enrollment_pins_every_trusted_key_and_the_keyring_version(client):
    first = signing_keys.active_key_id()
    second = rotate_signing_keys(actor="test", revoke_previous=True).key_id
    third = rotate_signing_keys(actor="test").key_id
    _, token = create_enrollment_token(make_site(), node_id="gw-keys")
    body = client.post("/api/enroll", json.dumps({"token": token}), content_type="application/json").json()
    assert [k["key_id"] for k in body["model_keys"]] == [second, third]
    assert body["revoked_keys"] == [first] and body["keyring_version"] == 2
    assert all(key_id_of(base64.b64decode(k["public_key"])) == k["key_id"] for k in body["model_keys"])
    assert EdgeNode.objects.get(node_id="gw-keys").keyring_version == 2  # nothing to send it


def test_a_keyring_command_is_signed_by_every_key_the_node_may_still_trust():
    site = make_site()
    old_node = EdgeNode.objects.create(node_id="gw-v0", site=site)
    first = signing_keys.active_key_id()
    second = rotate_signing_keys(actor="test").key_id
    third = rotate_signing_keys(actor="test", revoke=[first]).key_id
    command = keyring_command(old_node)
    assert command["type"] == "keyring" and command["args"]["version"] == 2
    assert command["args"]["keys"].keys() == {second, third} and command["args"]["revoked"] == [first]
    # Revoked in v2: a node at v0 may know only that key, so it signs too; a node at v2 is not offered it.
    assert {a["key_id"] for a in command["args"]["auth"]} == {first, second, third}
    current = EdgeNode.objects.create(node_id="gw-v2", site=site, keyring_version=2)
    assert {a["key_id"] for a in keyring_command(current)["args"]["auth"]} == {second, third}


def test_only_an_admin_rotates_from_the_nodes_page_and_it_is_audited(client, admin_user, manager, planner):
    first = signing_keys.active_key_id()
    client.force_login(admin_user)
    page = client.get("/fleet-security/nodes/").content.decode()
    assert 'id="rotate-keys-form"' in page and f'data-key="{first}"' in page
    for user in (manager, planner):
        client.force_login(user)
        assert client.post("/fleet-security/keys/rotate/", {"revoke_previous": "on"}).status_code == 403
    assert SigningKey.objects.count() == 1
    with pytest.raises(RotationError, match="only an admin"):
        rotate_signing_keys(manager)
    assert AuditEvent.objects.filter(action=const.AUDIT_KEYS_REFUSED, actor="fm", ok=False).exists()

    client.force_login(admin_user)
    resp = client.post("/fleet-security/keys/rotate/", {"revoke_previous": "on", "reason": "laptop stolen"}, follow=True)
    new = SigningKey.objects.get(state=const.KEY_ACTIVE)
    assert new.key_id != first and SigningKey.objects.get(key_id=first).state == const.KEY_REVOKED
    assert f"New model-signing key {new.key_id} is active" in resp.content.decode()
    event = AuditEvent.objects.get(action=const.AUDIT_KEYS_ROTATED)
    assert event.actor == "admin1" and event.target == new.key_id
    assert event.detail == {"keyring_version": 1, "previous": first, "revoked": [first], "reason": "laptop stolen"}
    assert client.get("/fleet-security/keys/rotate/").status_code == 405
    EdgeNode.objects.create(node_id="gw-behind", site=make_site())
    row = client.get("/fleet-security/nodes/").content.decode().split('data-node="gw-behind"')[1].split("</tr>")[0]
    assert "waiting for v1 (has v0)" in row


def test_manage_py_lists_rotates_and_revokes(settings):
    out = StringIO()
    call_command("signing_key", stdout=out)
    first = signing_keys.active_key_id()
    assert f"made model-signing key {first}" in out.getvalue()
    out = StringIO()
    call_command("signing_key", "--rotate", "--revoke-previous", "--reason", "drill", stdout=out)
    new = signing_keys.active_key_id()
    assert f"rotated: {new} is the active model-signing key (keyring v1)" in out.getvalue()
    assert f"{first}  revoked" in out.getvalue() and f"{new}  active" in out.getvalue()
    assert AuditEvent.objects.get(action=const.AUDIT_KEYS_ROTATED).actor == "manage.py"
    with pytest.raises(CommandError, match="go with --rotate"):
        call_command("signing_key", "--revoke", new)
    with pytest.raises(CommandError, match="no model-signing key with id ffff"):
        call_command("signing_key", "--rotate", "--revoke", "ffff")
    assert signing_keys.active_key_id() == new  # a refused rotation changed nothing


def test_the_keyring_goes_to_online_nodes_once_and_a_refusal_stops_it_until_the_next_rotation(settings):
    from edge_node.key_rotation import record_keyring_ack, step_keyrings

    settings.ROLLOUT_ACK_TIMEOUT_S = 0.0  # anything sent counts as unanswered at once
    site = make_site()
    EdgeNode.objects.create(node_id="gw-old-agent", site=site, online=True)
    EdgeNode.objects.create(node_id="gw-away", site=site, online=False)
    sent: list[tuple[str, dict]] = []
    assert step_keyrings(lambda node, cmd: sent.append((node, cmd))) == 0  # no rotation yet: nothing to send
    rotate_signing_keys(actor="test")
    assert step_keyrings(lambda node, cmd: sent.append((node, cmd))) == 1 and sent[0][0] == "gw-old-agent"
    cid = sent[0][1]["id"]
    # Someone else's command id: audited, but it does not stop the platform's own delivery.
    record_keyring_ack("gw-old-agent", {"id": "kr1-forged", "ok": False, "report": {"stage": "keyring", "reason": "unknown_signer"}})
    assert EdgeNode.objects.get(node_id="gw-old-agent").keyring_refused_version == 0
    # An agent from before keyrings answers like this: recorded, shown, not sent again.
    record_keyring_ack("gw-old-agent", {"id": cid, "ok": False, "detail": "unsupported command type 'keyring'"})
    node = EdgeNode.objects.get(node_id="gw-old-agent")
    assert node.keyring_refused_version == 1 and "unsupported command type" in node.keyring_detail
    assert AuditEvent.objects.filter(action=const.AUDIT_KEYS_REFUSED, actor="gw-old-agent", ok=False).count() == 2
    assert step_keyrings(lambda node, cmd: sent.append((node, cmd))) == 0
    # The next rotation is offered again, and a confirmation is kept.
    rotate_signing_keys(actor="test")
    assert step_keyrings(lambda node, cmd: sent.append((node, cmd))) == 1
    assert record_keyring_ack("gw-old-agent", {"id": sent[-1][1]["id"], "ok": True, "report": {"stage": "keyring", "version": 2}})
    assert EdgeNode.objects.get(node_id="gw-old-agent").keyring_version == 2
    assert step_keyrings(lambda node, cmd: sent.append((node, cmd))) == 0
    assert not record_keyring_ack("gw-old-agent", {"id": "kr9-x", "ok": True, "report": {"stage": "keyring", "version": 9}})
