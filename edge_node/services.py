"""Fleet-security state changes: each function owns its transaction and audits what it did.

Broker side effects (Mosquitto files + reload, embedded broker refresh and disconnect) run
only after the commit, so a rolled-back change never reaches the broker.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from edge_node import const
from edge_node.agent.files import write_atomic
from edge_node.audit import record_audit
from edge_node.broker_acl import (
    BrokerAccount,
    BrokerFilesError,
    reload_broker,
    render_acl_file,
    render_password_file,
)
from edge_node.credentials import (
    KEYED_SCHEME,
    hash_token,
    is_legacy_hash,
    keyed_secret_hash,
    mosquitto_hash,
    new_enrollment_token,
    new_secret,
    verify_keyed_secret,
    verify_secret,
)
from edge_node.models import EdgeNode, EnrollmentToken
from twins.models import Site

log = logging.getLogger(__name__)

# Called after commit with the username whose credentials changed (None = reload everything).
# The embedded broker registers here to refresh its table and drop revoked sessions.
CREDENTIAL_LISTENERS: list[Callable[[str | None], None]] = []


class EnrollmentError(Exception):
    """An enrollment refused; ``message`` is safe to show to the caller."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass
class EnrollmentResult:
    node: EdgeNode
    secret: str
    mqtt_username: str
    mqtt_password: str
    broker_url: str
    model_public_key_pem: str
    broker_note: str = ""
    keyring: dict[str, Any] = field(default_factory=dict)  # signing_keys.enrollment_keys(): what the node pins

    def as_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node.node_id,
            "site": self.node.site.key,
            "secret": self.secret,
            "mqtt": {"url": self.broker_url, "username": self.mqtt_username, "password": self.mqtt_password},
            "model_public_key": self.model_public_key_pem,
            **self.keyring,
        }


@dataclass
class NodeCredentials:
    secret: str
    mqtt_password: str


@dataclass
class _AfterCommit:
    notes: list[str] = field(default_factory=list)


# -- service accounts and broker files -------------------------------------------------------
def service_accounts() -> list[BrokerAccount]:
    """The ingest and platform accounts (from settings), hashed for the password file."""
    accounts = []
    for username, password, kind in (
        (settings.MQTT_INGEST_USERNAME, settings.MQTT_INGEST_PASSWORD, const.KIND_INGEST),
        (settings.MQTT_PLATFORM_USERNAME, settings.MQTT_PLATFORM_PASSWORD, const.KIND_PLATFORM),
    ):
        if not password:
            raise BrokerFilesError(f"the {kind} MQTT account {username!r} has no password: set MQTT_{kind.upper()}_PASSWORD (or _FILE)")
        accounts.append(BrokerAccount(username, mosquitto_hash(password), kind))
    return accounts


def service_usernames() -> set[str]:
    return {settings.MQTT_INGEST_USERNAME, settings.MQTT_PLATFORM_USERNAME}


def node_accounts() -> list[BrokerAccount]:
    """Every enrolled, non-revoked node that holds an MQTT password."""
    rows = EdgeNode.objects.filter(revoked_at__isnull=True).exclude(mqtt_password_hash="").values_list("node_id", "mqtt_password_hash")
    return [BrokerAccount(node_id, pw_hash, const.KIND_NODE) for node_id, pw_hash in rows]


def broker_files_configured() -> bool:
    return bool(settings.MQTT_PASSWORD_FILE and settings.MQTT_ACL_FILE)


def write_broker_files(*, password_file: str | Path | None = None, acl_file: str | Path | None = None, reload: bool = True, actor: str = "system") -> str:
    """Write Mosquitto's password and ACL files from the registry, then reload the broker.

    Paths default to MQTT_PASSWORD_FILE / MQTT_ACL_FILE; returns what was done.
    """
    password_file = password_file or settings.MQTT_PASSWORD_FILE
    acl_file = acl_file or settings.MQTT_ACL_FILE
    if not password_file or not acl_file:
        raise BrokerFilesError("set MQTT_PASSWORD_FILE and MQTT_ACL_FILE to write Mosquitto's files")
    nodes = node_accounts()
    clash = service_usernames().intersection(a.username for a in nodes)
    if clash:
        raise BrokerFilesError(f"node ids clash with service accounts: {', '.join(sorted(clash))}")
    accounts = service_accounts() + nodes
    mode = settings.MQTT_BROKER_FILE_MODE
    # ACL first: a node that is in the new password file must never meet an old ACL without it.
    write_atomic(Path(acl_file), render_acl_file(accounts), mode)
    write_atomic(Path(password_file), render_password_file(accounts), mode)
    how = reload_broker(settings.MOSQUITTO_PID_FILE, settings.MOSQUITTO_RELOAD_CMD) if reload else "not reloaded"
    record_audit(const.AUDIT_BROKER_FILES, actor=actor, detail={"nodes": len(nodes), "reload": how})
    return f"{len(nodes)} node account(s) written; {how}"


def _apply_broker_change(username: str | None, actor: str, holder: _AfterCommit) -> None:
    """After commit: rewrite Mosquitto's files (when configured) and tell in-process brokers."""
    for listener in CREDENTIAL_LISTENERS.copy():  # a listener may unregister itself
        try:
            listener(username)
        except Exception:
            log.exception("credential listener %r failed for %s", listener, username)
    if not broker_files_configured():
        return
    try:
        holder.notes.append(write_broker_files(actor=actor))
    except (BrokerFilesError, OSError) as exc:
        # The registry change is committed; the broker still has the old files. Say so loudly.
        log.error("broker files not updated after the change of %s: %s", username, exc)
        record_audit(const.AUDIT_BROKER_FILES, actor=actor, target=username or "", ok=False, detail={"error": str(exc)})
        holder.notes.append(f"broker files NOT updated: {exc}")


# -- enrollment tokens -----------------------------------------------------------------------
def create_enrollment_token(site: Site, created_by: Any = None, *, node_id: str = "", tags: str = "", ttl_s: int | None = None, remote_addr: str | None = None) -> tuple[EnrollmentToken, str]:
    """A one-time token for ``site``; returns the row and the plaintext (shown once, never stored)."""
    from edge_node.audit import actor_name

    ttl = ttl_s if ttl_s is not None else settings.ENROLLMENT_TOKEN_TTL_S
    plaintext = new_enrollment_token()
    with transaction.atomic():
        token = EnrollmentToken.objects.create(
            site=site, token_hash=hash_token(plaintext), node_id=node_id, tags=tags,
            created_by=created_by if getattr(created_by, "pk", None) else None,
            expires_at=timezone.now() + timedelta(seconds=ttl),
        )
        record_audit(const.AUDIT_TOKEN_CREATED, actor=actor_name(created_by), target=f"site:{site.key}",
                     detail={"token_id": token.pk, "node_id": node_id, "expires_at": token.expires_at.isoformat()}, remote_addr=remote_addr)
    return token, plaintext


def _refusal_for(token_hash: str) -> EnrollmentError:
    """Why a token could not be claimed (read after the failed claim, for the message only)."""
    token = EnrollmentToken.objects.filter(token_hash=token_hash).first()
    if token is None:
        return EnrollmentError("unknown_token", "unknown enrollment token", 403)
    if token.used_at is not None:
        return EnrollmentError("token_used", "enrollment token already used", 403)
    return EnrollmentError("token_expired", "enrollment token expired", 403)


def _generated_node_id(site: Site) -> str:
    suffix = secrets.token_hex(const.GENERATED_NODE_SUFFIX_BYTES)
    return f"{site.key[:64 - len(suffix) - 1]}-{suffix}"


def node_broker_url() -> str:
    """The broker URL handed to nodes: MQTT_NODE_BROKER_URL, else MQTT_URL without credentials."""
    from urllib.parse import urlsplit, urlunsplit

    url = settings.MQTT_NODE_BROKER_URL or settings.MQTT_URL
    parts = urlsplit(url)
    netloc = parts.hostname or "127.0.0.1"
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    scheme = {"tcp": "mqtt", "ssl": "mqtts"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, netloc, "", "", ""))


def _issue(node: EdgeNode, now: Any) -> NodeCredentials:
    creds = NodeCredentials(secret=new_secret(const.SECRET_BYTES), mqtt_password=new_secret(const.MQTT_PASSWORD_BYTES))
    node.secret_hash = node_secret_hash(creds.secret)
    node.mqtt_password_hash = mosquitto_hash(creds.mqtt_password)
    node.credentials_changed_at = now
    return creds


def enroll_node(token: str, *, remote_addr: str | None = None, name: str = "") -> EnrollmentResult:
    """Exchange a one-time token for a node identity and its credentials.

    The token is claimed with one conditional UPDATE (unused and unexpired), so of two racing
    enrollments exactly one wins. Every attempt is audited, refused ones included.
    """
    from edge_node.signing_keys import enrollment_keys, keyring_version, public_key_pem

    token = (token or "").strip()
    token_hash = hash_token(token)
    holder = _AfterCommit()
    try:
        if not token.startswith(const.TOKEN_PREFIX) or len(token) > 200:
            raise EnrollmentError("malformed_token", "malformed enrollment token", 400)
        with transaction.atomic():
            now = timezone.now()
            claimed = EnrollmentToken.objects.filter(token_hash=token_hash, used_at__isnull=True, expires_at__gt=now).update(used_at=now, used_by_addr=remote_addr)
            if claimed != 1:
                raise _refusal_for(token_hash)
            row = EnrollmentToken.objects.select_related("site").get(token_hash=token_hash)
            node_id = row.node_id or _generated_node_id(row.site)
            if node_id in service_usernames():
                raise EnrollmentError("node_id_reserved", f"node id {node_id!r} is reserved", 409)
            node = EdgeNode.objects.select_for_update().filter(node_id=node_id).first()
            if node is not None and node.revoked_at is not None:
                raise EnrollmentError("node_revoked", f"node {node_id} is revoked; ask for a token with another node id", 409)
            if node is not None and node.site_id != row.site_id:
                raise EnrollmentError("site_mismatch", f"node {node_id} belongs to another site", 409)
            if node is None:
                node = EdgeNode(node_id=node_id, site=row.site, tags=row.tags, name=name[:200])
            creds = _issue(node, now)
            reenrolled = node.enrolled_at is not None
            node.enrolled_at = now
            # It pins the current keyring in the answer: nothing to send it until the next rotation.
            node.keyring_version, node.keyring_sent_at, node.keyring_refused_version, node.keyring_detail = keyring_version(), None, 0, ""
            node.save()
            EnrollmentToken.objects.filter(pk=row.pk).update(enrolled_node=node)
            record_audit(const.AUDIT_ENROLL, actor=node_id, target=node_id, remote_addr=remote_addr,
                         detail={"token_id": row.pk, "site": row.site.key, "reenrolled": reenrolled})
            transaction.on_commit(lambda: _apply_broker_change(node_id, node_id, holder))
    except EnrollmentError as exc:
        # Outside the rolled-back transaction, so the refusal itself is kept.
        record_audit(const.AUDIT_ENROLL, actor="anonymous", target=f"token:{token_hash[:12]}", ok=False,
                     detail={"error": exc.code, "message": exc.message}, remote_addr=remote_addr)
        raise
    return EnrollmentResult(
        node=node, secret=creds.secret, mqtt_username=node.node_id, mqtt_password=creds.mqtt_password,
        broker_url=node_broker_url(), model_public_key_pem=public_key_pem(), broker_note="; ".join(holder.notes),
        keyring=enrollment_keys(),
    )


# -- revocation and rotation -----------------------------------------------------------------
def revoke_node(node: EdgeNode, *, actor: str = "system", remote_addr: str | None = None, reason: str = "") -> str:
    """Revoke a node: its credentials are deleted and the broker forgets it at once.

    Returns a note on the broker side (files written and reloaded, or why not).
    """
    holder = _AfterCommit()
    with transaction.atomic():
        now = timezone.now()
        updated = EdgeNode.objects.filter(pk=node.pk, revoked_at__isnull=True).update(revoked_at=now, secret_hash="", mqtt_password_hash="", credentials_changed_at=now, online=False)
        if not updated:
            return "already revoked"
        node.refresh_from_db()
        record_audit(const.AUDIT_REVOKE, actor=actor, target=node.node_id, remote_addr=remote_addr, detail={"reason": reason} if reason else {})
        transaction.on_commit(lambda: _apply_broker_change(node.node_id, actor, holder))
    return _broker_note(holder)


def _broker_note(holder: _AfterCommit) -> str:
    if holder.notes:
        return "; ".join(holder.notes)
    if transaction.get_connection().in_atomic_block:
        return "the broker is updated when the surrounding transaction commits"
    return "broker files not configured (embedded broker refreshed)"


def rotate_credentials(node: EdgeNode, *, actor: str = "system", remote_addr: str | None = None, secret: bool = True) -> NodeCredentials:
    """New MQTT password (and HTTP secret unless ``secret=False``); the old ones stop working."""
    holder = _AfterCommit()
    with transaction.atomic():
        locked = EdgeNode.objects.select_for_update().get(pk=node.pk)
        if locked.revoked_at is not None:
            raise ValueError(f"node {locked.node_id} is revoked")
        old_secret_hash = locked.secret_hash
        creds = _issue(locked, timezone.now())
        if not secret:
            locked.secret_hash = old_secret_hash
            creds.secret = ""
        locked.save(update_fields=["secret_hash", "mqtt_password_hash", "credentials_changed_at"])
        record_audit(const.AUDIT_CREDENTIALS_ROTATED, actor=actor, target=locked.node_id, remote_addr=remote_addr, detail={"secret": secret})
        transaction.on_commit(lambda: _apply_broker_change(locked.node_id, actor, holder))
    node.refresh_from_db()
    return creds


def issue_fleet_credentials(node_ids: list[str], *, actor: str = "embedded-fleet") -> dict[str, NodeCredentials]:
    """Fresh credentials for the simulated fleet of the demo, as enrollment gives real nodes: an
    MQTT password and the HTTP secret a node downloads model artifacts with (hashes stored)."""
    issued: dict[str, NodeCredentials] = {}
    holder = _AfterCommit()
    with transaction.atomic():
        now = timezone.now()
        for node in EdgeNode.objects.select_for_update().filter(node_id__in=node_ids, revoked_at__isnull=True):
            issued[node.node_id] = _issue(node, now)
            node.save(update_fields=["secret_hash", "mqtt_password_hash", "credentials_changed_at"])
        if issued:
            record_audit(const.AUDIT_CREDENTIALS_ROTATED, actor=actor, target=",".join(sorted(issued))[:200], detail={"nodes": len(issued), "secret": True})
            # One rewrite of the broker files for the whole fleet, not one per node.
            transaction.on_commit(lambda: _apply_broker_change(None, actor, holder))
    return issued


# -- node authentication (HTTP) --------------------------------------------------------------
def node_secret_key() -> bytes:
    """The server-side key of node-secret hashes: NODE_SECRET_HASH_KEY, or derived from SECRET_KEY."""
    configured = settings.NODE_SECRET_HASH_KEY
    if configured:
        return configured.encode("utf-8")
    return hmac.new(settings.SECRET_KEY.encode("utf-8"), b"aiot-node-secret-hash", hashlib.sha256).digest()


def node_secret_hash(secret: str) -> str:
    return keyed_secret_hash(secret, node_secret_key())


def authenticate_node(node_id: str, secret: str) -> EdgeNode | None:
    """The node when ``secret`` is its current secret and it is not revoked; else None.

    Keyed hash (HMAC-SHA256) compared in constant time; an unknown node id costs the same one
    HMAC, so timing does not tell which ids exist. A node still holding a legacy scrypt hash is
    checked once the slow way and, on success, moved to the keyed hash (only if the stored hash
    did not change meanwhile)."""
    key = node_secret_key()
    # node_id is unique: no ORDER BY (compiling .first()'s ordering cost more than the query).
    node = next(iter(EdgeNode.objects.filter(node_id=node_id, revoked_at__isnull=True).exclude(secret_hash="").order_by()[:1]), None)
    if node is None:
        verify_keyed_secret(secret, KEYED_SCHEME + "$" + "0" * 64, key)
        return None
    if is_legacy_hash(node.secret_hash):
        if not verify_secret(secret, node.secret_hash):
            return None
        upgraded = keyed_secret_hash(secret, key)
        if EdgeNode.objects.filter(pk=node.pk, secret_hash=node.secret_hash).update(secret_hash=upgraded):
            log.info("node %s: secret hash migrated from scrypt to HMAC-SHA256", node.node_id)
            node.secret_hash = upgraded
        return node
    if not verify_keyed_secret(secret, node.secret_hash, key):
        return None
    return node


def platform_broker_url(base_url: str | None = None) -> str:
    """``base_url`` (default MQTT_URL) with the platform account's credentials: for publishing
    commands to nodes and reading their acks and status."""
    return service_broker_url(settings.MQTT_PLATFORM_USERNAME, settings.MQTT_PLATFORM_PASSWORD, base_url)


def ingest_broker_url(base_url: str | None = None) -> str:
    """``base_url`` (default MQTT_URL) with the ingest account: MQTT_URL's own user and password,
    or MQTT_INGEST_USERNAME / MQTT_INGEST_PASSWORD(_FILE) when the URL carries none."""
    return service_broker_url(settings.MQTT_INGEST_USERNAME, settings.MQTT_INGEST_PASSWORD, base_url)


def service_broker_url(username: str, password: str, base_url: str | None = None) -> str:
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(base_url or settings.MQTT_URL)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    user = quote(username, safe="")
    secret = quote(password, safe="")
    netloc = (f"{user}:{secret}@" if password else f"{user}@" if user else "") + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, "", "", ""))
