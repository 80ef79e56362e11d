"""Webhook signatures (HMAC-SHA256 over "<timestamp>.<body>") and signed links in emails."""

from __future__ import annotations

import hashlib
import hmac

from django.core import signing

LINK_SALT = "notify.link"


def sign_body(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_body(secret: str, timestamp: int, body: bytes, signature: str) -> bool:
    """What a receiver does (and the tests): recompute and compare in constant time."""
    return hmac.compare_digest(sign_body(secret, timestamp, body), signature)


def link_token(path: str) -> str:
    return signing.dumps(path, salt=LINK_SALT)  # URL-safe base64, timestamped


def path_from_token(token: str, max_age_s: int) -> str:
    """The page a signed link names; BadSignature (or SignatureExpired) when it was not ours."""
    path = signing.loads(token, salt=LINK_SALT, max_age=max_age_s)
    if not isinstance(path, str):
        raise signing.BadSignature("not a path")
    return path
