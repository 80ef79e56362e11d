"""Secrets and their hashes: enrollment tokens, node secrets, Mosquitto MQTT passwords.

Pure functions (no Django): the platform keeps only hashes, the plaintext is handed out once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from edge_node import const


def new_secret(nbytes: int = const.SECRET_BYTES) -> str:
    """A URL-safe random string of ``nbytes`` random bytes."""
    return secrets.token_urlsafe(nbytes)


def new_enrollment_token() -> str:
    return const.TOKEN_PREFIX + secrets.token_urlsafe(const.TOKEN_BYTES)


def hash_token(token: str) -> str:
    """SHA-256 hex of an enrollment token. Tokens are 256-bit random, so a fast hash is enough
    and lets the platform look a token up by its hash."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


KEYED_SCHEME = "hmac-sha256"


def keyed_secret_hash(secret: str, key: bytes) -> str:
    """``hmac-sha256$<hex>``: HMAC-SHA256 of a node secret under a server-side key.

    Node secrets are 256-bit random, so a slow hash adds nothing against guessing; the key means
    a leaked database alone does not let anyone check candidate secrets. About a microsecond,
    where scrypt cost ~43 ms of CPU per request (a door any anonymous client could lean on)."""
    return f"{KEYED_SCHEME}${hmac.new(key, secret.encode('utf-8'), hashlib.sha256).hexdigest()}"


def verify_keyed_secret(secret: str, encoded: str, key: bytes) -> bool:
    """Constant-time comparison of ``secret``'s keyed hash with ``encoded``."""
    return hmac.compare_digest(keyed_secret_hash(secret, key).encode("ascii"), encoded.encode("utf-8", "replace"))


def is_legacy_hash(encoded: str) -> bool:
    """A scrypt hash from before the keyed hash; it is replaced on the node's next good login."""
    return encoded.startswith("scrypt$")


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """scrypt hash of a node secret: ``scrypt$n$r$p$<b64 salt>$<b64 hash>`` (the legacy scheme:
    still verified, and migrated to the keyed hash on first use)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=const.SCRYPT_N, r=const.SCRYPT_R, p=const.SCRYPT_P, dklen=const.SCRYPT_DKLEN)
    return f"scrypt${const.SCRYPT_N}${const.SCRYPT_R}${const.SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = encoded.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(digest_b64, validate=True)
        digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected), maxmem=256 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def mosquitto_hash(password: str, *, salt: bytes | None = None, iterations: int = const.MOSQUITTO_ITERATIONS) -> str:
    """Mosquitto 2.x password-file hash: ``$7$<iterations>$<b64 salt>$<b64 PBKDF2-HMAC-SHA512>``."""
    salt = salt if salt is not None else secrets.token_bytes(const.MOSQUITTO_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"${const.MOSQUITTO_HASH_ID}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_mosquitto_hash(password: str, encoded: str) -> bool:
    """Check a password against a Mosquitto ``$7$`` (PBKDF2-SHA512) hash; ``$6$`` (SHA-512) too."""
    parts = encoded.split("$")
    try:
        if len(parts) == 5 and parts[0] == "" and parts[1] == "7":
            iterations = int(parts[2])
            salt = base64.b64decode(parts[3], validate=True)
            expected = base64.b64decode(parts[4], validate=True)
            digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
            return hmac.compare_digest(digest, expected)
        if len(parts) == 4 and parts[0] == "" and parts[1] == "6":
            salt = base64.b64decode(parts[2], validate=True)
            expected = base64.b64decode(parts[3], validate=True)
            digest = hashlib.sha512(password.encode("utf-8") + salt).digest()
            return hmac.compare_digest(digest, expected)
    except (ValueError, TypeError):
        return False
    return False
