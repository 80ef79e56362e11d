"""Signed model artifacts: the one definition of what the platform signs and the node verifies.

An artifact is a ``model.onnx`` file plus a manifest (name, version, kind, sha256, size, input
and output signature, metadata). The platform signs ``SIGNING_CONTEXT + canonical(manifest)``
with Ed25519; the manifest carries the file's SHA-256, so the signature covers the bytes too.
No Django here: the agent imports it on the gateway, the platform imports it to sign.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

SIGNING_CONTEXT = b"aiot-model-artifact-v1\n"
MANIFEST_KEYS = ("name", "version", "kind", "sha256", "size", "inputs", "outputs", "meta")


class ArtifactRefused(ValueError):
    """An artifact that must not run; ``reason`` is a stable code, the message says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def canonical_manifest(manifest: dict[str, Any]) -> bytes:
    """Sorted keys, no spaces, ASCII: the same bytes on every machine for the same manifest."""
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing:
        raise ArtifactRefused("bad_manifest", f"manifest lacks {', '.join(missing)}")
    body = {k: manifest[k] for k in MANIFEST_KEYS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def signed_message(manifest: dict[str, Any]) -> bytes:
    return SIGNING_CONTEXT + canonical_manifest(manifest)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_artifact(data: bytes, manifest: dict[str, Any], signature_b64: str, trusted: Any, key_id: str | None = None) -> str:
    """Raise ArtifactRefused unless ``data`` is the manifest's file and the manifest carries the
    platform's signature by a key the node trusts. ``trusted`` is the node's keyring
    (edge_node/agent/keyring.py) or one pinned public key (PEM); ``key_id`` names the signing key
    (None: an artifact signed before keys had ids, tried against every trusted key). Returns the
    id of the key that signed it."""
    from .keyring import Keyring, KeyringError

    if not trusted:
        raise ArtifactRefused("no_public_key", "no model_public_key pinned in [platform]: refusing every model")
    if len(data) != int(manifest.get("size", -1)):
        raise ArtifactRefused("size_mismatch", f"downloaded {len(data)} bytes, manifest says {manifest.get('size')}")
    digest = sha256_hex(data)
    if digest != manifest.get("sha256"):
        raise ArtifactRefused("hash_mismatch", f"sha256 {digest[:16]}... != manifest {str(manifest.get('sha256'))[:16]}...")
    if isinstance(trusted, str):
        try:
            trusted = Keyring.from_pem(trusted)
        except KeyringError as exc:
            raise ArtifactRefused("no_public_key", f"pinned model_public_key unusable: {exc}") from None
    return trusted.verify(signed_message(manifest), signature_b64, key_id or None)
