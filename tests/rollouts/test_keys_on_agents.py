"""Keys that can change, with real agents: gateways enrolled through the platform's HTTP API
(``enroll`` pins the keyring beside node.toml), running the real ``Agent`` over the real
Mosquitto, driven by the rollout listener. Rotation reaches online and returning nodes; a
revoked key's models are refused; an older model is refused unless the rollout is an
explicit, audited rollback; a forged keyring command is refused and reported."""

from __future__ import annotations

import base64
import json
import shutil
import stat
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.contrib.auth.models import Group, User
from django.test import Client

from edge_node import signing_keys
from edge_node.agent import contract
from edge_node.agent.agent import Agent
from edge_node.agent.config import load_config
from edge_node.agent.enroll import enroll
from edge_node.agent.keyring import command_message, key_id_of
from edge_node.agent.models import current_version, set_current
from edge_node.key_rotation import rotate_signing_keys
from edge_node.models import AuditEvent, EdgeNode
from edge_node.rollouts import const
from edge_node.rollouts.actions import RolloutError, approve_rollout, propose_rollout
from edge_node.rollouts.models import Rollout, RolloutNode
from edge_node.rollouts.mqtt_client import PlatformMqtt
from edge_node.rollouts.registry import register_anomaly_model
from edge_node.services import create_enrollment_token
from tests.agent.conftest import Subscriber
from tests.factories import make_site
from tests.helpers import Publisher, wait_until

NODE_TOML = """[node]
models_dir = "models"
state_dir = "state"
publish_interval_s = 0.2
delivery = "broker"  # no ingest in these tests: nothing would confirm telemetry

[[sources]]
plugin = "induction_motor"
asset = "m1"
seed = 1
sample_interval_s = 0.05
model = "motor-anomaly"
"""


def _admin(name: str) -> User:
    user = User.objects.create_user(username=name, password="pw")
    user.groups.add(Group.objects.get_or_create(name="admin")[0])
    return user


@dataclass
class Gateway:
    """One enrolled gateway: its config dir (node.toml, keyring.json, models) and, once started, its agent."""

    node_id: str
    folder: Path
    agent: Agent | None = None
    stop: threading.Event | None = None
    thread: threading.Thread | None = None

    @property
    def keyring_file(self) -> Path:
        return self.folder / "keyring.json"

    def keyring_on_disk(self) -> dict:
        return json.loads(self.keyring_file.read_text())

    def start(self) -> Gateway:
        self.agent = Agent(load_config(self.folder / "node.toml"))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.agent.run, args=(self.stop,), daemon=True)
        self.thread.start()
        return self

    def close(self) -> None:
        if self.stop is not None:
            self.stop.set()
            self.thread.join(10)

    def running(self) -> str:
        return current_version(self.folder / "models", "motor-anomaly")


@dataclass
class Platform:
    url: str
    site: object
    proposer: User
    approver: User
    gateways: list[Gateway]
    root: Path
    seed_model: Path

    def enroll(self, name: str) -> Gateway:
        node_id = f"gw-{name}-{uuid.uuid4().hex[:6]}"
        folder = self.root / node_id
        shutil.copytree(self.seed_model, folder / "models" / "motor-anomaly" / "1")
        set_current(folder / "models", "motor-anomaly", "1")
        (folder / "node.toml").write_text(NODE_TOML)
        _, token = create_enrollment_token(self.site, node_id=node_id)
        enroll(self.url, token, folder / "node.toml")
        gateway = Gateway(node_id, folder)
        self.gateways.append(gateway)
        return gateway

    def roll_out(self, model, gateways: list[Gateway], **kw) -> Rollout:
        rollout = propose_rollout(self.proposer, model, node_ids=[g.node_id for g in gateways], canary_share=1.0,
                                  max_p99_latency_ms=50.0, min_agreement=0.0, **kw)
        approve_rollout(self.approver, rollout)
        return rollout


@pytest.fixture
def platform(live_server, listener, settings, tmp_path, mqtt_url, model_dirs):
    settings.VAR_DIR = tmp_path / "var"
    settings.MODEL_SIGNING_KEY_FILE = ""
    settings.MQTT_PASSWORD_FILE = settings.MQTT_ACL_FILE = ""
    settings.MQTT_NODE_BROKER_URL = mqtt_url
    settings.PLATFORM_PUBLIC_URL = live_server.url
    settings.ROLLOUT_JITTER_S = 0.05
    settings.ROLLOUT_STEP_INTERVAL_S = 0.2
    p = Platform(live_server.url, make_site(), _admin("prop"), _admin("appr"), [], tmp_path / "gateways", model_dirs["v1"])
    yield p
    for gateway in p.gateways:
        gateway.close()


def _online(gateway: Gateway) -> bool:
    return EdgeNode.objects.filter(node_id=gateway.node_id, online=True).exists()


def _keyring_version(gateway: Gateway) -> int:
    return EdgeNode.objects.get(node_id=gateway.node_id).keyring_version


def _final(rollout: Rollout, gateway: Gateway) -> RolloutNode:
    return wait_until(lambda: RolloutNode.objects.filter(rollout=rollout, node__node_id=gateway.node_id,
                                                         state__in=(const.N_SWITCHED, const.N_FAILED)).first(),
                      timeout=45, what=f"{gateway.node_id} to finish the rollout")


def test_enrollment_pins_the_keyring_beside_node_toml(platform):
    gateway = platform.enroll("pin")
    ring = gateway.keyring_on_disk()
    assert stat.S_IMODE(gateway.keyring_file.stat().st_mode) == 0o600
    assert ring == {"version": 0, "keys": {signing_keys.active_key_id(): signing_keys.public_key_base64()}, "revoked": []}
    assert key_id_of(base64.b64decode(signing_keys.public_key_base64())) == signing_keys.active_key_id()


def test_rotation_reaches_an_online_node_and_one_that_was_offline(platform, model_dirs):
    online, away = platform.enroll("on"), platform.enroll("away")
    online.start()
    wait_until(lambda: _online(online), timeout=15, what="the online gateway's status")
    old = signing_keys.active_key_id()

    new = rotate_signing_keys(platform.approver, reason="yearly rotation")

    wait_until(lambda: _keyring_version(online) == 1, timeout=15, what="the online node to confirm keyring v1")
    assert set(online.keyring_on_disk()["keys"]) == {old, new.key_id}
    assert online.agent.keyring.trusts(new.key_id) and online.agent.keyring.version == 1
    assert stat.S_IMODE(online.keyring_file.stat().st_mode) == 0o600
    # The node that was away got nothing yet: it was offline.
    assert _keyring_version(away) == 0 and set(away.keyring_on_disk()["keys"]) == {old}
    assert AuditEvent.objects.filter(action="keys.rotated", actor="appr", target=new.key_id).exists()

    # A second rotation revokes the first key while the other node is still away.
    newest = rotate_signing_keys(platform.approver, revoke=[old], reason="retire the first key")
    wait_until(lambda: _keyring_version(online) == 2, timeout=15, what="the online node to confirm keyring v2")
    assert online.keyring_on_disk() == {"version": 2, "keys": {new.key_id: new.public_key, newest.key_id: newest.public_key}, "revoked": [old]}

    away.start()  # back: its status says online, the listener sends it the keyring
    # It trusts only the first key, revoked since: the command is signed by it too, so it catches up in one step.
    wait_until(lambda: _keyring_version(away) == 2, timeout=15, what="the returning node to confirm keyring v2")
    assert away.keyring_on_disk() == online.keyring_on_disk()
    updates = AuditEvent.objects.filter(action="keys.node_updated")
    assert sorted(updates.values_list("actor", "detail__keyring_version")) == sorted([(online.node_id, 1), (online.node_id, 2), (away.node_id, 2)])

    # New models are signed with the newest key, and both nodes take them.
    model = register_anomaly_model(model_dirs["v2"])
    assert model.signing_key_id == newest.key_id
    rollout = platform.roll_out(model, [online, away])
    wait_until(lambda: Rollout.objects.get(pk=rollout.pk).state == const.DONE, timeout=60, what="the rollout to finish")
    assert online.running() == "2" and away.running() == "2"
    assert {rn.report["signed_by"] for rn in RolloutNode.objects.filter(rollout=rollout)} == {newest.key_id}


def test_a_model_signed_with_a_revoked_key_is_refused(platform, model_dirs, mqtt_url):
    gateway = platform.enroll("rev")
    gateway.start()
    wait_until(lambda: _online(gateway), timeout=15, what="the gateway's status")
    old_model = register_anomaly_model(model_dirs["v2"])  # signed with the first key
    first = old_model.signing_key_id

    rotate_signing_keys(platform.approver, revoke_previous=True, reason="key leaked")
    wait_until(lambda: _keyring_version(gateway) == 1, timeout=15, what="the node to confirm keyring v1")
    assert gateway.keyring_on_disk()["revoked"] == [first] and first not in gateway.keyring_on_disk()["keys"]

    # The platform will not send it...
    with pytest.raises(RolloutError, match=f"signed with model-signing key {first}, which is revoked"):
        platform.roll_out(old_model, [gateway])
    # ...and the node refuses it even when a (validly signed) command asks it to.
    command = signing_keys.sign_command(gateway.node_id, {"id": "d-revoked", "type": "deploy", "args": {
        "rollout": 0, "url": f"{platform.url}/api/models/{old_model.pk}/download", "manifest": old_model.manifest(),
        "signature": old_model.signature, "key_id": first, "gates": {}, "jitter_s": 0.0}})
    sub = Subscriber(mqtt_url, gateway.node_id)
    try:
        with PlatformMqtt(mqtt_url) as client:
            client.publish(gateway.node_id, command)
        final = wait_until(lambda: next((a for a in sub.of("cmd/ack") if a["id"] == "d-revoked" and a["report"].get("final")), None),
                           timeout=15, what="the node's final answer")
    finally:
        sub.close()
    assert [a["report"]["stage"] for a in sub.of("cmd/ack") if a["id"] == "d-revoked"] == ["failed"]  # not even downloaded
    assert not final["ok"] and final["report"]["reason"] == "revoked_key" and first in final["detail"]
    assert gateway.running() == "1"


def test_an_older_model_is_refused_and_an_explicit_rollback_is_accepted_and_audited(platform, model_dirs):
    gateway = platform.enroll("down")
    gateway.start()
    wait_until(lambda: _online(gateway), timeout=15, what="the gateway's status")
    v2 = register_anomaly_model(model_dirs["v2"])
    up = platform.roll_out(v2, [gateway])
    assert _final(up, gateway).state == const.N_SWITCHED and gateway.running() == "2"
    v1 = register_anomaly_model(model_dirs["v1"])

    plain = platform.roll_out(v1, [gateway])
    refused = _final(plain, gateway)
    assert refused.state == const.N_FAILED and refused.reason == "downgrade"
    assert "older than the running 2" in refused.detail
    wait_until(lambda: Rollout.objects.get(pk=plain.pk).state == const.ROLLED_BACK, timeout=15, what="the plain rollout to stop")
    assert gateway.running() == "2"

    rollback = platform.roll_out(v1, [gateway], allow_downgrade=True)
    admin = Client()
    admin.force_login(platform.approver)
    assert "Explicit rollback to an older version" in admin.get(f"/rollouts/{rollback.pk}/").content.decode()
    assert "Explicit rollback to an older version" not in admin.get(f"/rollouts/{plain.pk}/").content.decode()
    accepted = _final(rollback, gateway)
    assert accepted.state == const.N_SWITCHED, accepted.detail
    assert accepted.report["downgrade"] is True and accepted.report["downgrade_from"] == "2"
    assert gateway.running() == "1" and gateway.agent.model_versions() == {"motor-anomaly": "1"}
    proposed = AuditEvent.objects.get(action="rollout.proposed", target=f"rollout {rollback.pk}")
    assert proposed.actor == "prop" and proposed.detail["downgrade"] is True
    downgraded = wait_until(lambda: AuditEvent.objects.filter(action="model.downgraded", target=f"rollout {rollback.pk}").first(),
                            timeout=10, what="the downgrade on record")
    assert downgraded.actor == gateway.node_id and downgraded.detail["from"] == "2" and downgraded.detail["to"] == "1"
    assert not AuditEvent.objects.filter(action="model.downgraded", target=f"rollout {plain.pk}").exists()


def _forged(node_id: str, cid: str, key: Ed25519PrivateKey, claimed_id: str | None = None) -> bytes:
    raw = key.public_key().public_bytes_raw()
    args = {"version": 9, "keys": {key_id_of(raw): base64.b64encode(raw).decode()}, "revoked": []}
    signature = base64.b64encode(key.sign(command_message(node_id, cid, "keyring", args))).decode()
    args["auth"] = [{"key_id": claimed_id or key_id_of(raw), "signature": signature}]
    return contract.encode({"id": cid, "type": "keyring", "args": args})


def test_a_forged_rotation_command_is_refused_and_reported(platform, mqtt_url):
    gateway = platform.enroll("forge")
    gateway.start()
    wait_until(lambda: _online(gateway), timeout=15, what="the gateway's status")
    before = gateway.keyring_on_disk()
    attacker = Ed25519PrivateKey.generate()

    with Publisher(mqtt_url) as pub:
        pub.publish(contract.topic(gateway.node_id, "cmd"), _forged(gateway.node_id, "forged-1", attacker))
        # Claiming the platform's key id does not help: the signature is checked against it.
        pub.publish(contract.topic(gateway.node_id, "cmd"), _forged(gateway.node_id, "forged-2", attacker, signing_keys.active_key_id()))

    reports = wait_until(lambda: (lambda r: r if len(r) == 2 else None)(
        {e.detail["command"]: e for e in AuditEvent.objects.filter(action="keys.rotation_refused", actor=gateway.node_id)}),
        timeout=15, what="both refusals reported to the platform")
    assert reports["forged-1"].detail["reason"] == "unknown_signer" and not reports["forged-1"].ok
    assert reports["forged-2"].detail["reason"] == "bad_signature"
    assert gateway.keyring_on_disk() == before and gateway.agent.keyring.version == 0
    assert not gateway.agent.keyring.trusts(key_id_of(attacker.public_key().public_bytes_raw()))
    assert _keyring_version(gateway) == 0
