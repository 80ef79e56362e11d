"""The platform's Ed25519 model-signing key.

Read from ``MODEL_SIGNING_KEY_FILE`` (PEM, PKCS#8) when set; otherwise generated on first use
into ``VAR_DIR/keys/model-signing.pem`` with mode 600. Nodes receive the public key at
enrollment and verify every model artifact against it.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)
_lock = threading.Lock()


def signing_key_path() -> Path:
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


@lru_cache(maxsize=4)
def _load(path_str: str) -> Ed25519PrivateKey:
    path = Path(path_str)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ImproperlyConfigured(f"model-signing key {path} cannot be read: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"model-signing key {path} is not an Ed25519 private key")
    return key


def signing_private_key() -> Ed25519PrivateKey:
    """The private key, generated on first use unless MODEL_SIGNING_KEY_FILE names one."""
    path = signing_key_path()
    with _lock:
        if not path.exists():
            if getattr(settings, "MODEL_SIGNING_KEY_FILE", ""):
                raise ImproperlyConfigured(f"MODEL_SIGNING_KEY_FILE={path} does not exist")
            write_new_key(path)
    return _load(str(path))


def public_key() -> Ed25519PublicKey:
    return signing_private_key().public_key()


def public_key_pem() -> str:
    """The public key as PEM (SubjectPublicKeyInfo) text; what nodes store."""
    return public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def public_key_base64() -> str:
    """The raw 32-byte public key, base64."""
    raw = public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def sign(data: bytes) -> bytes:
    """Ed25519 signature (64 bytes) of ``data``."""
    return signing_private_key().sign(data)


def verify(data: bytes, signature: bytes, public_pem: str | None = None) -> bool:
    """True when ``signature`` is the platform's (or ``public_pem``'s) signature of ``data``."""
    key = public_key() if public_pem is None else serialization.load_pem_public_key(public_pem.encode("ascii"))
    if not isinstance(key, Ed25519PublicKey):
        return False
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
