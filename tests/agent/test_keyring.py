"""The node's keyring (edge_node/agent/keyring.py): key ids, signed keyring commands bound to one
node, revocation for good, and the file beside node.toml (mode 600). Real Ed25519 keys."""

from __future__ import annotations

import base64
import hashlib
import json
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_node.agent.artifact import ArtifactRefused
from edge_node.agent.config import ConfigError, parse_config
from edge_node.agent.deploy import agent_keyring
from edge_node.agent.keyring import (
    CommandRefused,
    Keyring,
    KeyringCommands,
    KeyringError,
    command_message,
    key_id_of,
)


class Key:
    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        self.raw = self.private.public_key().public_bytes_raw()
        self.id = key_id_of(self.raw)
        self.b64 = base64.b64encode(self.raw).decode()
        self.pem = self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def sign_command(self, node: str, cid: str, ctype: str, args: dict, claimed: str | None = None) -> dict:
        signature = base64.b64encode(self.private.sign(command_message(node, cid, ctype, args))).decode()
        return {**args, "auth": [{"key_id": claimed or self.id, "signature": signature}]}


def test_a_key_id_is_the_first_16_hex_of_the_sha256_of_the_raw_key():
    key = Key()
    assert key.id == hashlib.sha256(key.raw).hexdigest()[:16]
    assert Keyring.from_pem(key.pem).keys == {key.id: key.raw}
    with pytest.raises(KeyringError, match="does not match the key"):
        Keyring.from_b64({"0" * 16: key.b64})


def test_a_keyring_command_is_applied_saved_with_mode_600_and_reloaded(tmp_path):
    old, new = Key(), Key()
    path = tmp_path / "keyring.json"
    ring = Keyring.from_b64({old.id: old.b64}, path=path)
    handler = KeyringCommands("gw-1", ring)
    args = old.sign_command("gw-1", "kr1-a", "keyring", {"version": 1, "keys": {old.id: old.b64, new.id: new.b64}, "revoked": [old.id]})
    ack = handler.handle("kr1-a", args)
    assert ack["ok"] and ack["report"] == {**ack["report"], "stage": "keyring", "final": True, "version": 1, "keys": [new.id],
                                            "revoked": [old.id], "signed_by": old.id}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"version": 1, "keys": {new.id: new.b64}, "revoked": [old.id]}
    again = Keyring.load(path)
    assert again.keys == {new.id: new.raw} and again.revoked == {old.id} and again.version == 1


def test_a_revoked_key_stays_revoked_and_its_signatures_are_refused():
    old, new = Key(), Key()
    ring = Keyring.from_b64({old.id: old.b64, new.id: new.b64})
    ring.apply(1, {}, [old.id])
    # A later (genuine) command listing the revoked key again does not bring it back.
    ring.apply(2, {old.id: old.b64, new.id: new.b64}, [])
    assert not ring.trusts(old.id) and ring.is_revoked(old.id)
    signature = base64.b64encode(old.private.sign(b"manifest")).decode()
    with pytest.raises(ArtifactRefused) as refused:
        ring.verify(b"manifest", signature, old.id)
    assert refused.value.reason == "revoked_key"
    # Without a key id every trusted key is tried: the revoked one is not among them.
    with pytest.raises(ArtifactRefused) as refused:
        ring.verify(b"manifest", signature, None)
    assert refused.value.reason == "bad_signature"
    # A command signed only by the revoked key is refused as such.
    args = old.sign_command("gw-1", "kr3", "keyring", {"version": 3, "keys": {old.id: old.b64}, "revoked": []})
    with pytest.raises(CommandRefused) as cmd_refused:
        ring.verify_command("gw-1", "kr3", "keyring", args)
    assert cmd_refused.value.reason == "revoked_key"


def test_an_older_or_repeated_version_changes_nothing_and_no_command_may_empty_the_keyring():
    key, other = Key(), Key()
    ring = Keyring.from_b64({key.id: key.b64}, version=4)
    assert "already applied" in ring.apply(3, {other.id: other.b64}, [])
    assert not ring.trusts(other.id)
    with pytest.raises(KeyringError, match="no trusted key"):
        ring.apply(5, {}, [key.id])
    assert ring.trusts(key.id) and ring.version == 4


def test_a_command_is_bound_to_its_node_its_id_and_its_arguments():
    key = Key()
    ring = Keyring.from_b64({key.id: key.b64})
    args = key.sign_command("gw-1", "c1", "deploy", {"manifest": {"version": "2"}, "downgrade": True})
    assert ring.verify_command("gw-1", "c1", "deploy", args) == key.id
    for node, cid, changed in (("gw-2", "c1", {}), ("gw-1", "c2", {}), ("gw-1", "c1", {"downgrade": False})):
        with pytest.raises(CommandRefused) as refused:
            ring.verify_command(node, cid, "deploy", {**args, **changed})
        assert refused.value.reason == "bad_signature"
    with pytest.raises(CommandRefused) as refused:
        ring.verify_command("gw-1", "c1", "deploy", {"manifest": {"version": "2"}})
    assert refused.value.reason == "unsigned"


def test_a_forged_keyring_command_is_refused_and_the_ack_says_why(tmp_path):
    key, attacker = Key(), Key()
    path = tmp_path / "keyring.json"
    ring = Keyring.from_b64({key.id: key.b64}, path=path)
    handler = KeyringCommands("gw-1", ring)
    forged = attacker.sign_command("gw-1", "x1", "keyring", {"version": 7, "keys": {attacker.id: attacker.b64}, "revoked": [key.id]})
    ack = handler.handle("x1", forged)
    assert not ack["ok"] and ack["report"]["reason"] == "unknown_signer" and attacker.id in ack["detail"]
    claimed = attacker.sign_command("gw-1", "x2", "keyring", {"version": 7, "keys": {attacker.id: attacker.b64}, "revoked": []}, claimed=key.id)
    assert handler.handle("x2", claimed)["report"]["reason"] == "bad_signature"
    assert ring.keys == {key.id: key.raw} and ring.version == 0 and not path.exists()


def test_node_toml_keeps_the_keyring_beside_it_and_a_broken_one_stops_the_agent(tmp_path):
    key = Key()
    raw = {"node": {"id": "gw-1"}, "platform": {"model_public_key": key.pem}, "sources": [{"plugin": "induction_motor", "asset": "m1"}]}
    cfg = parse_config(raw, base_dir=tmp_path)
    assert cfg.platform.keyring_file == tmp_path / "keyring.json"
    assert agent_keyring(cfg).keys == {key.id: key.raw}  # no file yet: pinned from node.toml
    (tmp_path / "keyring.json").write_text('{"keys": {"abc": "not base64!"}}')
    with pytest.raises(ConfigError, match="keyring.json.*abc"):
        agent_keyring(cfg)
