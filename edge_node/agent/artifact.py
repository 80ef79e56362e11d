"""Signed model artifacts: the one definition of what the platform signs and the node verifies.

An artifact is a ``model.onnx`` file plus a manifest (name, version, kind, sha256, size, input
and output signature, metadata). The platform signs ``SIGNING_CONTEXT + canonical(manifest)``
with Ed25519; the manifest carries the file's SHA-256, so the signature covers the bytes too.
No Django here: the agent imports it on the gateway, the platform imports it to sign.
"""

from __future__ import annotations

import base64
import binascii
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


def verify_artifact(data: bytes, manifest: dict[str, Any], signature_b64: str, public_pem: str) -> None:
    """Raise ArtifactRefused unless ``data`` is the manifest's file and the manifest carries the
    platform's signature (checked against the pinned ``public_pem``)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not public_pem:
        raise ArtifactRefused("no_public_key", "no model_public_key pinned in [platform]: refusing every model")
    if len(data) != int(manifest.get("size", -1)):
        raise ArtifactRefused("size_mismatch", f"downloaded {len(data)} bytes, manifest says {manifest.get('size')}")
    digest = sha256_hex(data)
    if digest != manifest.get("sha256"):
        raise ArtifactRefused("hash_mismatch", f"sha256 {digest[:16]}... != manifest {str(manifest.get('sha256'))[:16]}...")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ArtifactRefused("bad_signature", "signature is not base64") from None
    try:
        key = serialization.load_pem_public_key(public_pem.encode("ascii"))
    except ValueError as exc:
        raise ArtifactRefused("no_public_key", f"pinned model_public_key unreadable: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ArtifactRefused("no_public_key", "pinned model_public_key is not Ed25519")
    try:
        key.verify(signature, signed_message(manifest))
    except InvalidSignature:
        raise ArtifactRefused("bad_signature", "Ed25519 signature does not verify against the pinned key") from None
