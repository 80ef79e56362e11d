"""The platform's Ed25519 model-signing keys, each with an id (a keyring that can change).

Where the keys live, and why: in the database (``edge_node.SigningKey``), the private half as
an encrypted PKCS#8 PEM under ``MODEL_SIGNING_KEY_PASSWORD`` (derived from SECRET_KEY when
unset). Every web process and Celery worker on every host reaches the database already, so
all of them sign with the same active key right after a rotation, with no key files to copy
between hosts; a key file on one host's disk would not reach the others. The passphrase, like
SECRET_KEY, is the one secret every host is given.

The first key comes from ``MODEL_SIGNING_KEY_FILE`` (PEM, PKCS#8) when set, else from
``VAR_DIR/keys/model-signing.pem`` (generated on first use with mode 600), so a deployment from
before key ids keeps its key and every node keeps verifying. ``rotate_signing_keys``
(edge_node/key_rotation.py) adds keys; exactly one is ``active`` (signs), earlier ones stay
``trusted`` (verify) until revoked. Key ids: ``edge_node.agent.keyring.key_id_of``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction

from edge_node import const
from edge_node.agent.keyring import command_message, key_id_of

log = logging.getLogger(__name__)
_lock = threading.Lock()


def signing_key_path() -> Path:
    """The first key's file (MODEL_SIGNING_KEY_FILE, else VAR_DIR/keys/model-signing.pem)."""
    configured = getattr(settings, "MODEL_SIGNING_KEY_FILE", "")
    if configured:
        return Path(configured)
    return Path(settings.VAR_DIR) / "keys" / "model-signing.pem"


def write_new_key(path: Path) -> None:
    """A new Ed25519 key at ``path`` (mode 600); if another process made one meanwhile, theirs is kept."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # link() fails if another process created the key meanwhile: theirs wins, ours is dropped.
        os.link(tmp, path)
        log.warning("generated a new model-signing key at %s", path)
    except FileExistsError:
        log.info("model-signing key at %s was created concurrently; using it", path)
    finally:
        tmp.unlink(missing_ok=True)


def _load_file_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ImproperlyConfigured(f"model-signing key {path} cannot be read: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"model-signing key {path} is not an Ed25519 private key")
    return key


def _first_key() -> Ed25519PrivateKey:
    path = signing_key_path()
    with _lock:
        if not path.exists():
            if getattr(settings, "MODEL_SIGNING_KEY_FILE", ""):
                raise ImproperlyConfigured(f"MODEL_SIGNING_KEY_FILE={path} does not exist")
            write_new_key(path)
    return _load_file_key(path)


# -- keys in the database ------------------------------------------------------------------
def _passphrase() -> bytes:
    configured = getattr(settings, "MODEL_SIGNING_KEY_PASSWORD", "")
    if configured:
        return configured.encode("utf-8")
    return hmac.new(settings.SECRET_KEY.encode("utf-8"), b"aiot-model-signing-key", hashlib.sha256).hexdigest().encode("ascii")


def raw_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def store_key(key: Ed25519PrivateKey, *, state: str, actor: str, source: str) -> Any:
    """A SigningKey row for ``key`` (encrypted); call inside the caller's transaction."""
    from edge_node.models import SigningKey

    raw = raw_public(key)
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(_passphrase())).decode("ascii")
    return SigningKey.objects.create(key_id=key_id_of(raw), public_key=base64.b64encode(raw).decode("ascii"),
                                     private_key=encrypted, state=state, created_by=actor[:150], source=source[:300])


def active_key() -> Any:
    """The active SigningKey; the first one is imported from the key file on first use."""
    from edge_node.audit import record_audit
    from edge_node.models import SigningKey

    found = SigningKey.objects.filter(state=const.KEY_ACTIVE).first()
    if found is not None:
        return found
    key = _first_key()
    try:
        with transaction.atomic():
            row = store_key(key, state=const.KEY_ACTIVE, actor="system", source=f"imported from {signing_key_path()}")
            record_audit(const.AUDIT_KEYS_CREATED, target=row.key_id, detail={"source": row.source})
    except IntegrityError:  # another process imported it (or made the first key) meanwhile
        found = SigningKey.objects.filter(state=const.KEY_ACTIVE).first()
        if found is None:
            raise
        return found
    log.info("model-signing key %s imported from %s", row.key_id, signing_key_path())
    return row


@lru_cache(maxsize=16)
def _decrypt(key_id: str, encrypted: str, passphrase: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(encrypted.encode("ascii"), password=passphrase)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"model-signing key {key_id} cannot be decrypted (MODEL_SIGNING_KEY_PASSWORD or SECRET_KEY "
                                   f"changed?): {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"model-signing key {key_id} is not an Ed25519 private key")
    return key


@dataclass(frozen=True)
class Signer:
    """One key's private half, ready to sign (fetch once per batch of commands)."""

    key_id: str
    private: Ed25519PrivateKey

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    def sign_b64(self, data: bytes) -> str:
        return base64.b64encode(self.private.sign(data)).decode("ascii")


def signer_for(row: Any) -> Signer:
    return Signer(row.key_id, _decrypt(row.key_id, row.private_key, _passphrase()))


def active_signer() -> Signer:
    return signer_for(active_key())


def signing_private_key() -> Ed25519PrivateKey:
    """The active key's private half."""
    return active_signer().private


def public_key() -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(active_key().public_key))


def public_key_pem() -> str:
    """The active public key as PEM (SubjectPublicKeyInfo) text: what nodes pin in node.toml."""
    return public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def public_key_base64() -> str:
    """The active raw 32-byte public key, base64."""
    return active_key().public_key


def active_key_id() -> str:
    return active_key().key_id


def sign(data: bytes) -> bytes:
    """Ed25519 signature (64 bytes) of ``data`` by the active key."""
    return active_signer().sign(data)


def verify(data: bytes, signature: bytes, public_pem: str | None = None) -> bool:
    """True when ``signature`` is the active key's (or ``public_pem``'s) signature of ``data``."""
    key = public_key() if public_pem is None else serialization.load_pem_public_key(public_pem.encode("ascii"))
    if not isinstance(key, Ed25519PublicKey):
        return False
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


# -- the keyring as nodes see it -------------------------------------------------------------
def keyring_version() -> int:
    """How many rotations there have been (nodes confirm the version they applied)."""
    from edge_node.models import KeyringChange

    return KeyringChange.objects.order_by("-version").values_list("version", flat=True).first() or 0


def trusted_keys() -> dict[str, str]:
    """key id -> raw public key (base64) of every key that is not revoked (the active one too)."""
    from edge_node.models import SigningKey

    active_key()
    return dict(SigningKey.objects.exclude(state=const.KEY_REVOKED).order_by("id").values_list("key_id", "public_key"))


def revoked_key_ids() -> list[str]:
    from edge_node.models import SigningKey

    return sorted(SigningKey.objects.filter(state=const.KEY_REVOKED).values_list("key_id", flat=True))


def is_revoked(key_id: str) -> bool:
    from edge_node.models import SigningKey

    return bool(key_id) and SigningKey.objects.filter(key_id=key_id, state=const.KEY_REVOKED).exists()


def platform_keyring() -> Any:
    """The platform's keyring (edge_node.agent.keyring.Keyring): what it verifies stored artifacts with."""
    from edge_node.agent.keyring import Keyring

    return Keyring.from_b64(trusted_keys(), revoked_key_ids(), keyring_version())


def enrollment_keys() -> dict[str, Any]:
    """What an enrolling node pins: every trusted key by id, the revoked ids, the version."""
    return {"model_keys": [{"key_id": k, "public_key": v} for k, v in trusted_keys().items()],
            "revoked_keys": revoked_key_ids(), "keyring_version": keyring_version()}


def sign_command(node_id: str, command: dict[str, Any], signers: list[Signer] | None = None) -> dict[str, Any]:
    """``command`` with ``args.auth``: signatures over it for ``node_id`` (edge_node/agent/keyring.py)
    by ``signers`` (default: the active key)."""
    signers = signers or [active_signer()]
    args = {k: v for k, v in (command.get("args") or {}).items() if k != "auth"}
    message = command_message(node_id, str(command["id"]), str(command["type"]), args)
    args["auth"] = [{"key_id": s.key_id, "signature": s.sign_b64(message)} for s in signers]
    return {**command, "args": args}
