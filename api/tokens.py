"""Creating, checking and revoking API tokens (service functions)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from api.models import ApiToken
from edge_node.audit import actor_name, record_audit

KEY_PREFIX = "aiot_"
LAST_USED_EVERY_S = 60  # last_used_at is written at most once a minute per token (no write per request)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_token(user: Any, name: str) -> tuple[ApiToken, str]:
    """A new token and its key (the only time the key exists outside the caller)."""
    # A label for people: control characters (NUL, escapes) dropped, at most 100 characters.
    name = "".join(ch for ch in (name or "") if ch.isprintable()).strip()[:100] or "token"
    for _ in range(5):
        prefix = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        if not ApiToken.objects.filter(prefix=prefix).exists():
            break
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name, prefix=prefix, key_hash=_hash(key))
        record_audit("api.token_created", actor=actor_name(user), target=f"token {prefix}", detail={"name": name})
    return token, key


def check_key(key: str) -> ApiToken | None:
    """The live token for ``key`` (its user loaded), or None."""
    parts = key.split("_")
    if len(parts) < 3 or not key.startswith(KEY_PREFIX):
        return None
    token = ApiToken.objects.select_related("user").filter(prefix=parts[1], revoked_at__isnull=True).first()
    if token is None or not hmac.compare_digest(token.key_hash, _hash(key)) or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > timedelta(seconds=LAST_USED_EVERY_S):
        ApiToken.objects.filter(id=token.id).update(last_used_at=now)
        token.last_used_at = now
    return token


def revoke_token(user: Any, token_id: int) -> bool:
    with transaction.atomic():
        changed = ApiToken.objects.filter(id=token_id, user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if changed:
            record_audit("api.token_revoked", actor=actor_name(user), target=f"token {token_id}")
    return bool(changed)
