"""The node's keyring: the platform's model-signing public keys it trusts, by key id.

A key id is the first 16 hex digits of the SHA-256 of the raw 32-byte Ed25519 public key
(``key_id_of``), so the platform and every node name a key the same way without a registry.

The keyring is pinned at enrollment (``keyring.json`` beside node.toml, mode 600, written by
``enroll``) and changed only by a ``keyring`` command whose signature verifies against a key
the node already trusts. A revoked key stays revoked: no later command can trust it again, and
every artifact or command it signed is refused. A node without a keyring file (an older
enrollment, an in-process simulated node) starts from ``[platform] model_public_key``.

Platform commands may carry ``args.auth = [{"key_id", "signature"}, ...]``: Ed25519 signatures of
``COMMAND_CONTEXT + canonical({"node", "id", "type", "args" without auth})``. The node id is in
the signed bytes, so a command signed for one node does not verify on another. A ``keyring``
command must be signed; so must a deploy that asks to install an older version (``downgrade``).

No Django here: the gateway imports it, and so does the platform, to sign what nodes verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .artifact import ArtifactRefused
from .const import KEYRING_FILE  # noqa: F401 - re-exported for enroll
from .files import write_atomic

log = logging.getLogger(__name__)

KEY_ID_HEX = 16
COMMAND_CONTEXT = b"aiot-command-v1\n"
CMD_KEYRING = "keyring"
KEYRING_STAGE = "keyring"  # report.stage of a keyring command's ack


class KeyringError(ValueError):
    """A keyring file or key that cannot be used; the message says which and why."""


class CommandRefused(ValueError):
    """A command whose signature does not hold; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def key_id_of(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()[:KEY_ID_HEX]


def raw_from_pem(pem: str) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise KeyringError(f"model public key unreadable: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyringError("model public key is not Ed25519")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _raw_from_b64(value: str, kid: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise KeyringError(f"key {kid}: public key is not base64") from None
    if len(raw) != 32:
        raise KeyringError(f"key {kid}: an Ed25519 public key has 32 bytes, got {len(raw)}")
    if key_id_of(raw) != kid:
        raise KeyringError(f"key {kid}: the id does not match the key (its id is {key_id_of(raw)})")
    return raw


def canonical(body: Any) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def command_message(node_id: str, cid: str, ctype: str, args: dict[str, Any]) -> bytes:
    """The bytes a platform command's signatures cover (``auth`` itself excluded)."""
    body = {"node": node_id, "id": cid, "type": ctype, "args": {k: v for k, v in args.items() if k != "auth"}}
    return COMMAND_CONTEXT + canonical(body)


class Keyring:
    """Trusted keys (id -> raw public key), revoked ids, and the platform's keyring version the
    node has applied. Thread-safe: deploys verify from pool threads while a command updates it."""

    def __init__(self, keys: dict[str, bytes] | None = None, revoked: Iterable[str] = (), version: int = 0,
                 path: Path | None = None) -> None:
        self.keys: dict[str, bytes] = dict(keys or {})
        self.revoked: set[str] = set(revoked)
        for kid in self.revoked:
            self.keys.pop(kid, None)
        self.version = version
        self.path = Path(path) if path else None
        self._lock = threading.Lock()

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def from_pem(cls, pem: str) -> Keyring:
        if not pem:
            return cls()
        raw = raw_from_pem(pem)
        return cls({key_id_of(raw): raw})

    @classmethod
    def from_b64(cls, keys: dict[str, str], revoked: Iterable[str] = (), version: int = 0, path: Path | None = None) -> Keyring:
        return cls({kid: _raw_from_b64(b64, kid) for kid, b64 in keys.items()}, revoked, version, path)

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Read ``keyring.json``; KeyringError names the file and the problem."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            keys = data["keys"]
            revoked = data.get("revoked", [])
            version = data.get("version", 0)
            if not isinstance(keys, dict) or not isinstance(revoked, list) or type(version) is not int:
                raise ValueError("keys must be an object, revoked a list, version an integer")
            return cls.from_b64({str(k): str(v) for k, v in keys.items()}, [str(r) for r in revoked], version, path)
        except OSError as exc:
            raise KeyringError(f"{path}: cannot read the keyring: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyringError(f"{path}: not a keyring: {exc}") from None

    @classmethod
    def for_platform(cls, keyring_file: Path | None, model_public_key: str = "", model_keys: dict[str, str] | None = None) -> Keyring:
        """The keyring file when it exists; else one pinned from node.toml's public key (and
        ``model_keys`` given in code), kept in memory until a keyring command changes it."""
        if keyring_file is not None and Path(keyring_file).exists():
            return cls.load(Path(keyring_file))
        ring = cls.from_b64(model_keys or {})
        if model_public_key:
            raw = raw_from_pem(model_public_key)
            ring.keys.setdefault(key_id_of(raw), raw)
        ring.path = Path(keyring_file) if keyring_file is not None else None
        return ring

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            return {"version": self.version, "keys": {k: base64.b64encode(v).decode("ascii") for k, v in sorted(self.keys.items())},
                    "revoked": sorted(self.revoked)}

    def save(self) -> None:
        if self.path is not None:
            write_atomic(self.path, json.dumps(self.as_json(), indent=1) + "\n", 0o600)  # what the node trusts: owner only

    # -- checking ----------------------------------------------------------------------------
    def trusts(self, kid: str) -> bool:
        with self._lock:
            return kid in self.keys

    def is_revoked(self, kid: str) -> bool:
        with self._lock:
            return kid in self.revoked

    def _verify_with(self, raw: bytes, signature: bytes, message: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def verify(self, message: bytes, signature_b64: str, kid: str | None) -> str:
        """The id of the trusted key that signed ``message``; ArtifactRefused otherwise.
        Without ``kid`` (an artifact signed before keys had ids) every trusted key is tried."""
        try:
            signature = base64.b64decode(signature_b64, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise ArtifactRefused("bad_signature", "signature is not base64") from None
        with self._lock:
            keys, revoked = dict(self.keys), set(self.revoked)
        if not keys:
            raise ArtifactRefused("no_public_key", "no model-signing key pinned (keyring empty): refusing every model")
        if kid:
            if kid in revoked:
                raise ArtifactRefused("revoked_key", f"signed with key {kid}, which the platform revoked")
            if kid not in keys:
                raise ArtifactRefused("unknown_key", f"signed with key {kid}, which this node does not trust")
            candidates = {kid: keys[kid]}
        else:
            candidates = keys
        for cand, raw in candidates.items():
            if self._verify_with(raw, signature, message):
                return cand
        which = f"key {kid}" if kid else f"any of the {len(keys)} trusted keys"
        raise ArtifactRefused("bad_signature", f"Ed25519 signature does not verify against {which}")

    def verify_command(self, node_id: str, cid: str, ctype: str, args: dict[str, Any]) -> str:
        """The id of a trusted key whose signature in ``args.auth`` covers this command for this
        node; CommandRefused (unsigned, unknown_signer, revoked_key, bad_signature) otherwise."""
        auth = args.get("auth")
        if not isinstance(auth, list) or not auth:
            raise CommandRefused("unsigned", f"{ctype} command {cid} carries no signature")
        try:
            message = command_message(node_id, cid, ctype, args)
        except (TypeError, ValueError) as exc:
            raise CommandRefused("bad_command", f"{ctype} command {cid} cannot be canonicalized: {exc}") from None
        seen: list[str] = []
        failed: list[str] = []
        for entry in auth:
            if not isinstance(entry, dict):
                continue
            kid = str(entry.get("key_id", ""))
            seen.append(kid)
            if not self.trusts(kid):
                continue
            try:
                return self.verify(message, str(entry.get("signature", "")), kid)
            except ArtifactRefused:
                failed.append(kid)
        if failed:
            raise CommandRefused("bad_signature", f"{ctype} command {cid}: signature by key {', '.join(failed)} does not verify")
        if seen and all(self.is_revoked(k) for k in seen):
            raise CommandRefused("revoked_key", f"{ctype} command {cid} is signed only by revoked key(s) {', '.join(seen)}")
        raise CommandRefused("unknown_signer", f"{ctype} command {cid} is signed by key(s) {', '.join(seen) or '?'}, none of which this node trusts")

    # -- changing ----------------------------------------------------------------------------
    def apply(self, version: int, keys: dict[str, str], revoked: Iterable[str]) -> str:
        """Apply a verified keyring command: add ``keys``, revoke ``revoked`` (for good).
        Returns what changed; KeyringError when it would leave no trusted key or is malformed."""
        added = {kid: _raw_from_b64(b64, kid) for kid, b64 in keys.items()}
        revoked = set(revoked)
        with self._lock:
            if version <= self.version:
                return f"keyring version {version} already applied (at {self.version})"
            new_keys = {**self.keys, **{k: v for k, v in added.items() if k not in self.revoked}}
            new_revoked = self.revoked | revoked
            for kid in new_revoked:
                new_keys.pop(kid, None)
            if not new_keys:
                raise KeyringError(f"keyring version {version} would leave no trusted key")
            gained = sorted(set(new_keys) - set(self.keys))
            lost = sorted(new_revoked - self.revoked)
            old = (self.keys, self.revoked, self.version)
            self.keys, self.revoked, self.version = new_keys, new_revoked, version
        try:
            self.save()
        except OSError:
            with self._lock:
                self.keys, self.revoked, self.version = old
            raise
        return f"keyring version {version}: added {', '.join(gained) or 'none'}; revoked {', '.join(lost) or 'none'}"


class KeyringCommands:
    """Handles ``keyring`` commands for one node: verify, apply, ack (stage ``keyring``)."""

    def __init__(self, node_id: str, keyring: Keyring) -> None:
        self.node_id = node_id
        self.keyring = keyring

    @staticmethod
    def handles(ctype: str) -> bool:
        return ctype == CMD_KEYRING

    def handle(self, cid: str, args: dict[str, Any]) -> dict[str, Any]:
        """The ack for one keyring command (a refusal is logged and reported, never raised)."""
        report: dict[str, Any] = {"stage": KEYRING_STAGE, "final": True}
        try:
            signer = self.keyring.verify_command(self.node_id, cid, CMD_KEYRING, args)
            version, keys, revoked = args.get("version"), args.get("keys"), args.get("revoked", [])
            if type(version) is not int or not isinstance(keys, dict) or not isinstance(revoked, list):
                raise CommandRefused("bad_command", "keyring args need version (int), keys (object), revoked (list)")
            detail = self.keyring.apply(version, {str(k): str(v) for k, v in keys.items()}, [str(r) for r in revoked])
        except CommandRefused as exc:
            log.warning("node %s: keyring command %s refused: %s", self.node_id, cid, exc)
            return {"id": cid, "ok": False, "detail": f"refused: {exc.detail}"[:500], "report": {**report, "reason": exc.reason}}
        except (KeyringError, OSError) as exc:
            log.warning("node %s: keyring command %s not applied: %s", self.node_id, cid, exc)
            return {"id": cid, "ok": False, "detail": f"not applied: {exc}"[:500], "report": {**report, "reason": "keyring_error"}}
        log.info("node %s: %s (signed by %s)", self.node_id, detail, signer)
        snap = self.keyring.as_json()
        return {"id": cid, "ok": True, "detail": detail[:500], "report": {
            **report, "version": snap["version"], "keys": sorted(snap["keys"]), "revoked": snap["revoked"],
            "signed_by": signer, "at": time.time()}}
