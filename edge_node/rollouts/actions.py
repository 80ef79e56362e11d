"""Rollout state changes as named actions (admin only, audited): propose, approve (two-person
rule), pause, resume, cancel, manual rollback. Each owns its transaction and wakes the
driver only after commit."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from edge_node.audit import actor_name, record_audit
from edge_node.models import EdgeNode
from web.roles import ADMIN, roles_of

from . import const
from .models import ModelArtifact, Rollout, RolloutNode

log = logging.getLogger(__name__)


class RolloutError(ValueError):
    """An action that is refused; the message says why (shown to the admin, audited)."""


class UnknownNodesError(RolloutError):
    """A proposal names node ids that do not exist (a typo: the API's 400 on ``nodes``)."""


def _require_admin(user: Any, action: str, target: str) -> None:
    if not getattr(user, "is_authenticated", False) or ADMIN not in roles_of(user):
        record_audit(const.AUDIT_ROLLOUT_REFUSED, actor=actor_name(user), target=target, ok=False,
                     detail={"action": action, "reason": "not an admin"})
        raise RolloutError(f"only an admin may {action} a rollout")


def target_nodes(rollout: Rollout) -> list[EdgeNode]:
    """Non-revoked nodes matching the site and tag (both when both are given), plus listed node ids."""
    qs = EdgeNode.objects.filter(revoked_at__isnull=True)
    picked: dict[int, EdgeNode] = {}
    if rollout.target_site_id or rollout.target_tag:
        sel = qs
        if rollout.target_site_id:
            sel = sel.filter(site_id=rollout.target_site_id)
        if rollout.target_tag:
            sel = sel.filter(tags__icontains=rollout.target_tag)
        for node in sel:
            if not rollout.target_tag or rollout.target_tag in [t.strip() for t in node.tags.split(",")]:
                picked[node.pk] = node
    if rollout.target_nodes:
        for node in qs.filter(node_id__in=rollout.target_nodes):
            picked[node.pk] = node
    return sorted(picked.values(), key=lambda n: n.node_id)


def propose_rollout(user: Any, model: ModelArtifact, *, site: Any = None, tag: str = "", node_ids: list[str] | None = None,
                    canary_share: float = 0.1, max_p99_latency_ms: float = 50.0, min_agreement: float = 0.9,
                    max_load_failures: int = 0, allow_downgrade: bool = False) -> Rollout:
    """``allow_downgrade``: an explicit rollback to an older version (nodes refuse an older model
    otherwise); the signed deploy command says so, and the proposal, approval and every node
    that switches down are audited."""
    from .registry import revoked_signature

    _require_admin(user, "propose", model.label)
    if model.kind != const.KIND_ANOMALY:
        raise RolloutError(f"{model.label} is a {model.kind} model: edge agents run anomaly models only")
    revoked = revoked_signature(model)
    if revoked:
        record_audit(const.AUDIT_ROLLOUT_REFUSED, actor=actor_name(user), target=model.label, ok=False,
                     detail={"action": "propose", "reason": revoked})
        raise RolloutError(f"{revoked}: nodes refuse it. Register the model again (a new version) to sign it with the active key")
    if not 0.0 < canary_share <= 1.0:
        raise RolloutError("canary share must be in (0, 1]")
    node_ids = list(dict.fromkeys(n.strip() for n in node_ids or [] if n.strip()))  # as listed, once each
    if node_ids:
        known = set(EdgeNode.objects.filter(node_id__in=node_ids).values_list("node_id", flat=True))
        unknown = [n for n in node_ids if n not in known]
        if unknown:
            raise UnknownNodesError(f"no node {', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}: check the node ids")
    if not (site or tag or node_ids):
        raise RolloutError("a rollout needs a target: a site, a tag or node ids")
    rollout = Rollout(model=model, target_site=site, target_tag=tag.strip(), target_nodes=list(node_ids or []),
                      canary_share=canary_share, max_p99_latency_ms=max_p99_latency_ms, min_agreement=min_agreement,
                      max_load_failures=max_load_failures, allow_downgrade=allow_downgrade, proposer=user)
    if not target_nodes(rollout):
        raise RolloutError("the target matches no enrolled, non-revoked node")
    with transaction.atomic():
        rollout.save()
        record_audit(const.AUDIT_ROLLOUT_PROPOSED, actor=actor_name(user), target=f"rollout {rollout.pk}",
                     detail={"model": model.label, "site": getattr(site, "key", None), "tag": tag, "nodes": node_ids or [],
                             "canary_share": canary_share, "downgrade": allow_downgrade, "gates": {"max_p99_latency_ms": max_p99_latency_ms,
                                                                     "min_agreement": min_agreement,
                                                                     "max_load_failures": max_load_failures}})
    return rollout


def _wake_driver(rollout_id: int) -> None:
    from .tasks import step_rollout_task

    transaction.on_commit(lambda: step_rollout_task.delay(rollout_id))


def approve_rollout(user: Any, rollout: Rollout) -> Rollout:
    """A second admin approves: the rollout's nodes are fixed now and the driver starts the canary."""
    target = f"rollout {rollout.pk}"
    _require_admin(user, "approve", target)
    if rollout.proposer_id == user.pk:
        record_audit(const.AUDIT_ROLLOUT_REFUSED, actor=actor_name(user), target=target, ok=False,
                     detail={"action": "approve", "reason": "proposer cannot approve"})
        raise RolloutError("the proposer cannot approve their own rollout: another admin must")
    with transaction.atomic():
        updated = Rollout.objects.filter(pk=rollout.pk, state=const.PROPOSED).update(
            state=const.APPROVED, approver=user, approved_at=timezone.now())
        if not updated:
            raise RolloutError(f"rollout {rollout.pk} is not waiting for approval")
        rollout.refresh_from_db()
        nodes = target_nodes(rollout)
        RolloutNode.objects.bulk_create([RolloutNode(rollout=rollout, node=n) for n in nodes])
        record_audit(const.AUDIT_ROLLOUT_APPROVED, actor=actor_name(user), target=target,
                     detail={"model": rollout.model.label, "nodes": len(nodes), "downgrade": rollout.allow_downgrade})
        _wake_driver(rollout.pk)
    return rollout


def pause_rollout(user: Any, rollout: Rollout, reason: str = "") -> Rollout:
    _require_admin(user, "pause", f"rollout {rollout.pk}")
    with transaction.atomic():
        r = Rollout.objects.select_for_update().get(pk=rollout.pk)
        if r.state not in (const.APPROVED, const.CANARY, const.PROMOTING):
            raise RolloutError(f"rollout {r.pk} is {r.state}: only a running rollout can be paused")
        r.paused_from, r.state, r.reason = r.state, const.PAUSED, reason[:500]
        r.save(update_fields=["paused_from", "state", "reason"])
        record_audit(const.AUDIT_ROLLOUT_PAUSED, actor=actor_name(user), target=f"rollout {r.pk}", detail={"reason": reason})
    return r


def resume_rollout(user: Any, rollout: Rollout) -> Rollout:
    _require_admin(user, "resume", f"rollout {rollout.pk}")
    with transaction.atomic():
        r = Rollout.objects.select_for_update().get(pk=rollout.pk)
        if r.state != const.PAUSED:
            raise RolloutError(f"rollout {r.pk} is {r.state}, not paused")
        r.state, r.paused_from = r.paused_from or const.APPROVED, ""
        r.save(update_fields=["state", "paused_from"])
        record_audit(const.AUDIT_ROLLOUT_RESUMED, actor=actor_name(user), target=f"rollout {r.pk}")
        _wake_driver(r.pk)
    return r


def _not_sent(rollout_id: int, why: str) -> int:
    """Nodes the rollout had not reached yet end as 'not sent' (a final state, with the reason)."""
    return RolloutNode.objects.filter(rollout_id=rollout_id, state__in=const.WAITING_STATES).update(
        state=const.N_NOT_SENT, detail=why[:500], updated_at=timezone.now())


def cancel_rollout(user: Any, rollout: Rollout) -> Rollout:
    _require_admin(user, "cancel", f"rollout {rollout.pk}")
    with transaction.atomic():
        updated = Rollout.objects.filter(pk=rollout.pk, state__in=(const.PROPOSED, const.PAUSED)).update(
            state=const.CANCELLED, finished_at=timezone.now())
        if not updated:
            raise RolloutError("only a proposed or paused rollout can be cancelled (roll a running one back)")
        _not_sent(rollout.pk, "not sent: the rollout was cancelled")
        record_audit(const.AUDIT_ROLLOUT_CANCELLED, actor=actor_name(user), target=f"rollout {rollout.pk}")
    rollout.refresh_from_db()
    return rollout


def mark_rolled_back(rollout_id: int, reason: str, *, actor: str = "system") -> bool:
    """Move a running (or paused) rollout to rolled_back; the driver then sends rollback to every
    node that switched. Returns False when it was already final or rolled back."""
    with transaction.atomic():
        updated = Rollout.objects.filter(pk=rollout_id).exclude(state__in=(const.CANCELLED, const.ROLLED_BACK, const.PROPOSED)).update(
            state=const.ROLLED_BACK, reason=reason[:500], finished_at=timezone.now())
        if updated:
            _not_sent(rollout_id, "not sent: the rollout was rolled back before this node's turn")
            record_audit(const.AUDIT_ROLLOUT_ROLLBACK, actor=actor, target=f"rollout {rollout_id}", ok=actor != "system",
                         detail={"reason": reason})
            _wake_driver(rollout_id)
    return bool(updated)


def rollback_rollout(user: Any, rollout: Rollout, reason: str = "manual rollback") -> Rollout:
    _require_admin(user, "roll back", f"rollout {rollout.pk}")
    if not mark_rolled_back(rollout.pk, reason, actor=actor_name(user)):
        raise RolloutError(f"rollout {rollout.pk} is {rollout.state}: nothing to roll back")
    rollout.refresh_from_db()
    return rollout
