"""The rollout driver: plain functions the listener loop and the Celery task call.

``step_rollout`` does one idempotent round for one rollout: time out silent nodes, pick the
canary, evaluate the health gates, promote or roll back, and send commands within the pacing
limit (at most ROLLOUT_MAX_CONCURRENT nodes downloading/verifying/shadowing at once).
``record_ack`` and ``record_status`` apply what nodes publish on cmd/ack and status.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from edge_node import signing_keys
from edge_node.audit import record_audit
from edge_node.models import EdgeNode

from . import const
from .actions import mark_rolled_back
from .models import Rollout, RolloutNode
from .registry import signing_key_of

log = logging.getLogger(__name__)

# publish(node_id, command dict) -> None; raises OSError when the broker refuses it.
Publish = Callable[[str, dict[str, Any]], None]


def download_url(rollout: Rollout) -> str:
    return f"{settings.PLATFORM_PUBLIC_URL.rstrip('/')}{const.ARTIFACT_URL_PREFIX}{rollout.model_id}/download"


def deploy_command(rollout: Rollout, rn: RolloutNode, signer: signing_keys.Signer | None = None) -> dict[str, Any]:
    """The deploy command for one node, signed for it by the active key (``signer``): the agent
    trusts its ``downgrade`` flag (an explicit rollback) only because of that signature."""
    model = rollout.model
    command = {"id": rn.command_id, "type": const.CMD_DEPLOY, "args": {
        "rollout": rollout.pk, "url": download_url(rollout), "manifest": model.manifest(), "signature": model.signature,
        "key_id": signing_key_of(model) or None,
        "gates": {"max_p99_latency_ms": rollout.max_p99_latency_ms, "min_agreement": rollout.min_agreement,
                  "max_latency_ratio": settings.ROLLOUT_MAX_LATENCY_RATIO},
        "shadow_windows": settings.ROLLOUT_SHADOW_WINDOWS, "jitter_s": settings.ROLLOUT_JITTER_S,
        "downgrade": rollout.allow_downgrade}}
    return signing_keys.sign_command(rn.node.node_id, command, [signer] if signer else None)


def rollback_command(rollout: Rollout, rn: RolloutNode, signer: signing_keys.Signer | None = None) -> dict[str, Any]:
    command = {"id": rn.command_id, "type": const.CMD_ROLLBACK, "args": {
        "rollout": rollout.pk, "name": rollout.model.name, "version": rollout.model.version,
        "to_version": rn.previous_version or None}}
    return signing_keys.sign_command(rn.node.node_id, command, [signer] if signer else None)


def gate_failure(rollout: Rollout, rn: RolloutNode) -> str | None:
    """Why this node's report fails a health gate (the platform re-checks what the node measured)."""
    if rn.state == const.N_FAILED and rn.reason in const.GATE_FAILURE_REASONS:
        return f"{rn.node.node_id}: {rn.detail or rn.reason}"
    p99 = rn.report.get("latency_p99_ms")
    if isinstance(p99, (int, float)) and p99 > rollout.max_p99_latency_ms:
        return f"{rn.node.node_id}: p99 {p99:.2f} ms > {rollout.max_p99_latency_ms:g} ms"
    agreement = rn.report.get("agreement")
    if isinstance(agreement, (int, float)) and agreement < rollout.min_agreement:
        return f"{rn.node.node_id}: agreement {agreement:.3f} < {rollout.min_agreement:g}"
    return None


def gate_verdict(failed: int, judged: int, scope: int, *, max_share: float, min_nodes: int) -> bool:
    """True when the fleet fails its gate: more than ``max_share`` of the judged nodes failed once
    at least ``min_nodes`` (or the whole scope, if smaller) were judged; or so many failed that
    the share can no longer be met however the rest do. One noisy node in a large canary is
    tolerated; a model that is truly worse fails on most nodes and is stopped within the canary
    (AWS IoT Jobs' abort criteria, Azure Device Update's failure share)."""
    if failed <= 0:
        return False
    if failed > max_share * scope:
        return True
    return judged >= min(min_nodes, scope) and failed / judged > max_share


def _evaluate(rollout: Rollout, nodes: list[RolloutNode]) -> str | None:
    """The reason to roll back, or None."""
    load_failures = [rn for rn in nodes if rn.state == const.N_FAILED and rn.reason not in const.GATE_FAILURE_REASONS]
    judged = [rn for rn in nodes if rn.state in (const.N_FAILED, const.N_SWITCHED, const.N_PASSED) and rn not in load_failures]
    gate_failed = [(rn, why) for rn in judged if (why := gate_failure(rollout, rn))]
    if gate_verdict(len(gate_failed), len(judged), len(nodes), max_share=settings.ROLLOUT_GATE_MAX_FAILED_SHARE,
                    min_nodes=settings.ROLLOUT_GATE_MIN_NODES):
        return (f"health gate failed on {len(gate_failed)} of {len(judged)} judged nodes (> {settings.ROLLOUT_GATE_MAX_FAILED_SHARE:.0%} allowed; "
                f"first: {gate_failed[0][1]})")
    if len(load_failures) > rollout.max_load_failures:
        first = load_failures[0]
        return (f"{len(load_failures)} load failure(s) > {rollout.max_load_failures} allowed "
                f"(first: {first.node.node_id}: {first.reason} {first.detail})")
    return None


def _time_out(rollout: Rollout, now: Any) -> None:
    cutoff = now - timedelta(seconds=settings.ROLLOUT_ACK_TIMEOUT_S)
    for rn in rollout.nodes.filter(state__in=const.IN_FLIGHT_STATES, sent_at__lt=cutoff).select_related("node"):
        if not rn.node.online:
            # Went away mid-deploy: it gets the command again when its status says online.
            RolloutNode.objects.filter(pk=rn.pk, state=rn.state).update(state=const.N_OFFLINE, detail="went offline during deploy")
        else:
            RolloutNode.objects.filter(pk=rn.pk, state=rn.state).update(
                state=const.N_FAILED, reason="timeout", detail=f"no final reply within {settings.ROLLOUT_ACK_TIMEOUT_S:g} s")


def _send_deploys(rollout: Rollout, candidates: Q, publish: Publish, now: Any) -> int:
    in_flight = rollout.nodes.filter(state__in=const.IN_FLIGHT_STATES).count()
    room = settings.ROLLOUT_MAX_CONCURRENT - in_flight
    sent = 0
    signer: signing_keys.Signer | None = None  # one key lookup per step, not one per node
    waiting = rollout.nodes.filter(candidates, state__in=(const.N_PENDING, const.N_OFFLINE)).select_related("node").order_by("-canary", "node__node_id")
    for rn in waiting:
        if room <= 0:
            break
        if not rn.node.online:
            if rn.state != const.N_OFFLINE:
                RolloutNode.objects.filter(pk=rn.pk, state=rn.state).update(state=const.N_OFFLINE)
            continue
        attempt = rn.attempts + 1
        command_id = f"ro{rollout.pk}-n{rn.node_id}-d{attempt}"
        previous = str((rn.node.status.get("versions") or {}).get(f"model:{rollout.model.name}", ""))
        # Claim the row first (only one driver sends it), then publish.
        claimed = RolloutNode.objects.filter(pk=rn.pk, state=rn.state).update(
            state=const.N_SENT, command_id=command_id, sent_at=now, attempts=attempt, previous_version=previous[:64],
            reason="", detail="")
        if not claimed:
            continue
        rn.command_id, rn.previous_version = command_id, previous
        try:
            signer = signer or signing_keys.active_signer()
            publish(rn.node.node_id, deploy_command(rollout, rn, signer))
        except OSError as exc:
            log.warning("rollout %s: deploy to %s not published: %s", rollout.pk, rn.node.node_id, exc)
            RolloutNode.objects.filter(pk=rn.pk, state=const.N_SENT).update(state=rn.state, detail=f"publish failed: {exc}"[:500])
            break
        room -= 1
        sent += 1
    return sent


def _send_rollbacks(rollout: Rollout, publish: Publish, now: Any) -> int:
    resend_before = now - timedelta(seconds=settings.ROLLOUT_ACK_TIMEOUT_S)
    sent = 0
    signer: signing_keys.Signer | None = None
    todo = rollout.nodes.filter(Q(state=const.N_SWITCHED) & (Q(rollback_sent_at__isnull=True) | Q(rollback_sent_at__lt=resend_before)))
    for rn in todo.select_related("node"):
        if not rn.node.online:
            continue  # it is told when it returns (its status says online again)
        rn.command_id = f"ro{rollout.pk}-n{rn.node_id}-r{rn.attempts + 1}"
        rn.attempts += 1
        rn.rollback_sent_at = now
        rn.save(update_fields=["command_id", "attempts", "rollback_sent_at", "updated_at"])
        try:
            signer = signer or signing_keys.active_signer()
            publish(rn.node.node_id, rollback_command(rollout, rn, signer))
        except OSError as exc:
            log.warning("rollout %s: rollback to %s not published: %s", rollout.pk, rn.node.node_id, exc)
            RolloutNode.objects.filter(pk=rn.pk).update(rollback_sent_at=None)
            break
        sent += 1
    return sent


def _pick_canary(rollout: Rollout) -> None:
    nodes = list(rollout.nodes.select_related("node").order_by("node__node_id"))
    want = max(1, math.ceil(rollout.canary_share * len(nodes)))
    online_first = sorted(nodes, key=lambda rn: (not rn.node.online, rn.node.node_id))
    RolloutNode.objects.filter(pk__in=[rn.pk for rn in online_first[:want]]).update(canary=True)


def step_rollout(rollout_id: int, publish: Publish) -> str | None:
    """One round for one rollout; returns its state afterwards (None when it is gone)."""
    now = timezone.now()
    rollout = Rollout.objects.select_related("model").filter(pk=rollout_id).first()
    if rollout is None or rollout.state not in const.ACTIVE_STATES:
        return rollout.state if rollout else None
    _time_out(rollout, now)
    if rollout.state == const.ROLLED_BACK:
        _send_rollbacks(rollout, publish, now)
        return rollout.state
    if rollout.state == const.APPROVED:
        with transaction.atomic():
            if Rollout.objects.filter(pk=rollout.pk, state=const.APPROVED).update(state=const.CANARY):
                _pick_canary(rollout)
        rollout.state = const.CANARY
    scope = Q(canary=True) if rollout.state == const.CANARY else Q()
    nodes = list(rollout.nodes.filter(scope).select_related("node"))
    why = _evaluate(rollout, nodes)
    if why:
        mark_rolled_back(rollout.pk, why)
        _send_rollbacks(rollout, publish, now)
        return const.ROLLED_BACK
    # Every node final: switched, or failed within what the gates tolerate (it keeps its old model).
    if all(rn.state in (const.N_SWITCHED, const.N_FAILED) for rn in nodes) and any(rn.state == const.N_SWITCHED for rn in nodes):
        if rollout.state == const.CANARY:
            if Rollout.objects.filter(pk=rollout.pk, state=const.CANARY).update(state=const.PROMOTING):
                record_audit(const.AUDIT_ROLLOUT_PROMOTED, target=f"rollout {rollout.pk}",
                             detail={"canary_nodes": len(nodes), "model": rollout.model.label})
            rollout.state = const.PROMOTING
            scope = Q()
        else:
            if Rollout.objects.filter(pk=rollout.pk, state=const.PROMOTING).update(state=const.DONE, finished_at=now):
                record_audit(const.AUDIT_ROLLOUT_DONE, target=f"rollout {rollout.pk}",
                             detail={"nodes": len(nodes), "model": rollout.model.label})
            return const.DONE
    _send_deploys(rollout, scope, publish, now)
    return rollout.state


def step_active(publish: Publish) -> int:
    """Step every rollout with work to do; returns how many there were."""
    ids = list(Rollout.objects.filter(state__in=const.ACTIVE_STATES).values_list("pk", flat=True))
    for rid in ids:
        try:
            step_rollout(rid, publish)
        except Exception:
            log.exception("rollout %s: step failed", rid)
    return len(ids)


def _node_state_for(report: dict[str, Any], ok: bool) -> str | None:
    stage = report.get("stage")
    if stage in const.PROGRESS_STAGES:
        return stage
    if stage == const.N_SWITCHED and ok:
        return const.N_SWITCHED
    if stage == const.N_ROLLED_BACK and ok:
        return const.N_ROLLED_BACK
    if stage == const.N_PASSED and ok:
        return const.N_PASSED
    if not ok:
        return const.N_FAILED
    return None


def record_ack(node_id: str, ack: dict[str, Any]) -> RolloutNode | None:
    """Apply one cmd/ack: find the RolloutNode by command id (and node), move its state.
    Acks of other commands, stale attempts and other nodes' ids are ignored."""
    cid = str(ack.get("id", ""))
    if not cid.startswith("ro"):
        return None
    rn = RolloutNode.objects.filter(command_id=cid, node__node_id=node_id).select_related("rollout").first()
    if rn is None:
        return None
    report = ack.get("report") if isinstance(ack.get("report"), dict) else {}
    ok = bool(ack.get("ok"))
    state = _node_state_for(report, ok)
    if state is None:
        return rn
    if state in const.PROGRESS_STAGES and rn.state not in const.IN_FLIGHT_STATES:
        return rn  # a late progress report must not undo a final one
    if state == const.N_FAILED and rn.state == const.N_SWITCHED and report.get("stage") == const.N_ROLLED_BACK:
        state = const.N_SWITCHED  # a refused rollback leaves the node where it was
    fields = {"state": state, "detail": str(ack.get("detail", ""))[:500]}
    if state == const.N_FAILED:
        fields["reason"] = str(report.get("reason") or "failed")[:64]
    if report.get("final"):
        fields["report"] = report
    updated = RolloutNode.objects.filter(pk=rn.pk).exclude(state=state).update(**fields, updated_at=timezone.now())
    if updated and state == const.N_SWITCHED and report.get("downgrade"):
        # An older model now runs on this node because an admin asked for a rollback: on record.
        record_audit(const.AUDIT_MODEL_DOWNGRADED, actor=node_id, target=f"rollout {rn.rollout_id}",
                     detail={"from": report.get("downgrade_from"), "to": report.get("version"), "signed_by": report.get("signed_by")})
    if not updated:
        RolloutNode.objects.filter(pk=rn.pk).update(**fields, updated_at=timezone.now())
    rn.refresh_from_db()
    return rn


def record_status(node_id: str, status: dict[str, Any]) -> bool:
    """A node's retained status: when it comes back online, its offline-waiting rollouts can send.
    Returns True when the node's online flag changed (the ingest writes the full status too)."""
    online = status.get("state") == "online"
    changed = EdgeNode.objects.filter(node_id=node_id).exclude(online=online).update(online=online, last_seen=timezone.now())
    return bool(changed)
