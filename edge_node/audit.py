"""The fleet audit log: one helper so every caller records the same shape."""

from __future__ import annotations

import logging
from typing import Any

from edge_node.models import AuditEvent

log = logging.getLogger(__name__)


def record_audit(action: str, *, actor: str = "system", target: str = "", ok: bool = True, detail: dict[str, Any] | None = None, remote_addr: str | None = None) -> AuditEvent:
    """Store one audit event (and log it). ``actor`` is a username, a node id or 'system'."""
    event = AuditEvent.objects.create(
        actor=(actor or "")[:150], action=action[:64], target=(target or "")[:200], ok=ok,
        detail=detail or {}, remote_addr=remote_addr or None,
    )
    log.log(logging.INFO if ok else logging.WARNING, "audit %s actor=%s target=%s ok=%s %s", action, actor, target, ok, detail or "")
    return event


def actor_name(user: Any) -> str:
    return getattr(user, "get_username", lambda: "")() or "system"


def readable(value: Any) -> str:
    """An audit detail's value as people read it: none as '-', yes/no, lists comma-separated,
    nested mappings as 'key value' pairs (not Python's None, True, ['a'] and {'k': v})."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(readable(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k} {readable(v)}" for k, v in value.items())
    return str(value)
