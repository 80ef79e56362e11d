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
from django.db import connection, transaction
from django.db.models import Count, Q
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


def gate_failed_now(rollout: Rollout, rn: RolloutNode) -> bool:
    """Whether a node's final report counts as a health-gate failure (stored as ``gate_failed``
    when the ack arrives, so a step counts failures in SQL instead of reading every node)."""
    if rn.state == const.N_FAILED and rn.reason not in const.GATE_FAILURE_REASONS:
        return False  # a load failure, counted against max_load_failures
    return rn.state in (const.N_FAILED, const.N_SWITCHED, const.N_PASSED) and gate_failure(rollout, rn) is not None


_JUDGED = Q(state__in=(const.N_SWITCHED, const.N_PASSED)) | Q(state=const.N_FAILED, reason__in=const.GATE_FAILURE_REASONS)
_LOAD_FAILED = Q(state=const.N_FAILED) & ~Q(reason__in=const.GATE_FAILURE_REASONS)


def tally(rollout: Rollout, scope: Q) -> dict[str, int]:
    """Counts of the nodes in ``scope`` a step decides on: one aggregate query, however large the fleet."""
    return rollout.nodes.filter(scope).aggregate(
        total=Count("pk"), switched=Count("pk", filter=Q(state=const.N_SWITCHED)),
        final=Count("pk", filter=Q(state__in=(const.N_SWITCHED, const.N_FAILED))),
        judged=Count("pk", filter=_JUDGED), gate_failed=Count("pk", filter=_JUDGED & Q(gate_failed=True)),
        load_failed=Count("pk", filter=_LOAD_FAILED))


def _evaluate(rollout: Rollout, scope: Q, counts: dict[str, int]) -> str | None:
    """The reason to roll back, or None."""
    if gate_verdict(counts["gate_failed"], counts["judged"], counts["total"], max_share=settings.ROLLOUT_GATE_MAX_FAILED_SHARE,
                    min_nodes=settings.ROLLOUT_GATE_MIN_NODES):
        first = rollout.nodes.filter(scope, _JUDGED, gate_failed=True).select_related("node").order_by("updated_at", "pk").first()
        why = (gate_failure(rollout, first) if first else None) or "a node failed its gate"
        return (f"health gate failed on {counts['gate_failed']} of {counts['judged']} judged nodes "
                f"(> {settings.ROLLOUT_GATE_MAX_FAILED_SHARE:.0%} allowed; first: {why})")
    if counts["load_failed"] > rollout.max_load_failures:
        first = rollout.nodes.filter(scope, _LOAD_FAILED).select_related("node").order_by("updated_at", "pk").first()
        detail = f"{first.node.node_id}: {first.reason} {first.detail}" if first else "?"
        return f"{counts['load_failed']} load failure(s) > {rollout.max_load_failures} allowed (first: {detail})"
    return None


def in_flight_limit(total: int, switched: int) -> int:
    """How many nodes of a rollout of ``total`` may be between command and final reply at once.

    The first wave is ROLLOUT_MAX_CONCURRENT nodes; every node that switches opens one more
    slot (the window doubles with each wave that succeeds, as AWS IoT Jobs' exponential rollout
    rate does), up to ROLLOUT_MAX_CONCURRENT_SHARE of the fleet. A small fleet keeps the fixed
    limit; a failing model opens no slots (and its gate failures roll it back)."""
    base = settings.ROLLOUT_MAX_CONCURRENT
    ceiling = max(base, math.ceil(settings.ROLLOUT_MAX_CONCURRENT_SHARE * total))
    return min(ceiling, base + switched)


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
    whole = rollout.nodes.aggregate(total=Count("pk"), switched=Count("pk", filter=Q(state=const.N_SWITCHED)),
                                    in_flight=Count("pk", filter=Q(state__in=const.IN_FLIGHT_STATES)))
    room = in_flight_limit(whole["total"], whole["switched"]) - whole["in_flight"]
    # Waiting nodes that are offline wait for their status to say online (one UPDATE, not one a node).
    rollout.nodes.filter(candidates, state=const.N_PENDING, node__online=False).update(state=const.N_OFFLINE, updated_at=now)
    if room <= 0:
        return 0
    waiting = list(rollout.nodes.filter(candidates, state__in=const.WAITING_STATES, node__online=True).select_related("node")
                   .order_by("-canary", "node__node_id")[:room])
    claimed = _claim(rollout, waiting, now)  # first (only one driver sends a node its command), then publish
    sent = 0
    signer: signing_keys.Signer | None = None  # one key lookup per step, not one per node
    for i, (rn, _waited_in) in enumerate(claimed):
        try:
            signer = signer or signing_keys.active_signer()
            publish(rn.node.node_id, deploy_command(rollout, rn, signer))
        except OSError as exc:
            log.warning("rollout %s: deploy to %s not published: %s", rollout.pk, rn.node.node_id, exc)
            for rest, state in claimed[i:]:  # this node and the ones after it wait for the next step
                RolloutNode.objects.filter(pk=rest.pk, state=const.N_SENT).update(state=state, detail=f"publish failed: {exc}"[:500])
            break
        sent += 1
    return sent


_CLAIM_FIELDS = ("state", "command_id", "sent_at", "attempts", "previous_version", "reason", "detail", "gate_failed", "updated_at")


def _claim(rollout: Rollout, waiting: list[RolloutNode], now: Any) -> list[tuple[RolloutNode, str]]:
    """Move waiting nodes to ``sent`` with their new command ids, each only if it is still in the
    state it was read in (another driver may have claimed it): one executemany for them all.
    Returns (node, the state it waited in) for every row this call claimed."""
    if not waiting:
        return []
    before = {rn.pk: rn.state for rn in waiting}
    for rn in waiting:
        rn.attempts += 1
        rn.command_id = f"ro{rollout.pk}-n{rn.node_id}-d{rn.attempts}"
        rn.previous_version = str((rn.node.status.get("versions") or {}).get(f"model:{rollout.model.name}", ""))[:64]
        rn.state, rn.sent_at, rn.reason, rn.detail, rn.gate_failed, rn.updated_at = const.N_SENT, now, "", "", False, now
    meta = RolloutNode._meta
    fields = [meta.get_field(name) for name in _CLAIM_FIELDS]
    state_col = connection.ops.quote_name(meta.get_field("state").column)
    qn = connection.ops.quote_name
    sql = (f"UPDATE {qn(meta.db_table)} SET {', '.join(f'{qn(f.column)} = %s' for f in fields)} "
           f"WHERE {qn(meta.pk.column)} = %s AND {state_col} = %s")
    params = [[f.get_db_prep_save(getattr(rn, f.attname), connection) for f in fields] + [rn.pk, before[rn.pk]] for rn in waiting]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, params)
        won = cursor.rowcount
    if won != len(waiting):  # lost some rows to another driver: keep only the ones stamped by this call
        ours = set(RolloutNode.objects.filter(pk__in=list(before), state=const.N_SENT, sent_at=now,
                                              command_id__in=[rn.command_id for rn in waiting]).values_list("pk", flat=True))
        waiting = [rn for rn in waiting if rn.pk in ours]
    return [(rn, before[rn.pk]) for rn in waiting]


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
    counts = tally(rollout, scope)
    why = _evaluate(rollout, scope, counts)
    if why:
        mark_rolled_back(rollout.pk, why)
        _send_rollbacks(rollout, publish, now)
        return const.ROLLED_BACK
    # Every node final: switched, or failed within what the gates tolerate (it keeps its old model).
    if counts["total"] and counts["final"] == counts["total"] and counts["switched"]:
        if rollout.state == const.CANARY:
            if Rollout.objects.filter(pk=rollout.pk, state=const.CANARY).update(state=const.PROMOTING):
                record_audit(const.AUDIT_ROLLOUT_PROMOTED, target=f"rollout {rollout.pk}",
                             detail={"canary_nodes": counts["total"], "model": rollout.model.label})
            rollout.state = const.PROMOTING
            scope = Q()
        else:
            if Rollout.objects.filter(pk=rollout.pk, state=const.PROMOTING).update(state=const.DONE, finished_at=now):
                record_audit(const.AUDIT_ROLLOUT_DONE, target=f"rollout {rollout.pk}",
                             detail={"nodes": counts["total"], "model": rollout.model.label})
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


ACK_QUERY_CHUNK = 500  # command ids per SELECT (well under every database's parameter limit)


def _apply_ack(rn: RolloutNode, ack: dict[str, Any], now: Any) -> bool:
    """Move one RolloutNode (in memory) by one ack; True when it changed."""
    report = ack.get("report") if isinstance(ack.get("report"), dict) else {}
    ok = bool(ack.get("ok"))
    state = _node_state_for(report, ok)
    if state is None:
        return False
    if state in const.PROGRESS_STAGES and rn.state not in const.IN_FLIGHT_STATES:
        return False  # a late progress report must not undo a final one
    refused_rollback = state == const.N_FAILED and rn.state == const.N_SWITCHED and report.get("stage") == const.N_ROLLED_BACK
    if refused_rollback:
        state = const.N_SWITCHED  # a refused rollback leaves the node where it was
    rn.state, rn.detail, rn.updated_at = state, str(ack.get("detail", ""))[:500], now
    if state == const.N_FAILED:
        rn.reason = str(report.get("reason") or "failed")[:64]
    if report.get("final"):
        rn.report = report
        if not refused_rollback and state != const.N_ROLLED_BACK:
            rn.gate_failed = gate_failed_now(rn.rollout, rn)
    return True


def record_acks(acks: list[tuple[str, dict[str, Any]]]) -> list[RolloutNode]:
    """Apply a batch of cmd/ack messages (in arrival order) with a few queries, whatever the batch
    size: find each RolloutNode by command id (the ack must come from that command's node), move
    its state, write every changed row in one transaction. Acks of other commands, stale
    attempts and other nodes' ids are ignored. Returns the rows that changed (final ones have
    ``report["final"]``)."""
    wanted = [(node_id, ack, str(ack.get("id", ""))) for node_id, ack in acks]
    cids = list(dict.fromkeys(cid for _n, _a, cid in wanted if cid.startswith("ro")))
    if not cids:
        return []
    rows: dict[str, RolloutNode] = {}
    for i in range(0, len(cids), ACK_QUERY_CHUNK):
        for rn in RolloutNode.objects.filter(command_id__in=cids[i:i + ACK_QUERY_CHUNK]).select_related("rollout", "node"):
            rows[rn.command_id] = rn
    now = timezone.now()
    changed: dict[int, RolloutNode] = {}
    downgraded: list[tuple[str, RolloutNode, dict[str, Any]]] = []
    for node_id, ack, cid in wanted:
        rn = rows.get(cid)
        if rn is None or rn.node.node_id != node_id:
            continue
        was = rn.state
        if _apply_ack(rn, ack, now):
            changed[rn.pk] = rn
            report = ack.get("report") if isinstance(ack.get("report"), dict) else {}
            if rn.state == const.N_SWITCHED and was != const.N_SWITCHED and report.get("downgrade"):
                downgraded.append((node_id, rn, report))
    if changed:
        _write_acked(list(changed.values()))
    for node_id, rn, report in downgraded:
        # An older model now runs on this node because an admin asked for a rollback: on record.
        record_audit(const.AUDIT_MODEL_DOWNGRADED, actor=node_id, target=f"rollout {rn.rollout_id}",
                     detail={"from": report.get("downgrade_from"), "to": report.get("version"), "signed_by": report.get("signed_by")})
    return list(changed.values())


_ACKED_FIELDS = ("state", "detail", "reason", "report", "gate_failed", "updated_at")


def _write_acked(rows: list[RolloutNode]) -> None:
    """One parameterised UPDATE run for every row (executemany) in one transaction: Django's
    bulk_update builds a CASE expression per field and row, which cost more than the acks."""
    meta = RolloutNode._meta
    fields = [meta.get_field(name) for name in _ACKED_FIELDS]
    qn = connection.ops.quote_name
    sql = (f"UPDATE {qn(meta.db_table)} SET {', '.join(f'{qn(f.column)} = %s' for f in fields)} "
           f"WHERE {qn(meta.pk.column)} = %s")
    params = [[f.get_db_prep_save(getattr(rn, f.attname), connection) for f in fields] + [rn.pk] for rn in rows]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, params)


def record_ack(node_id: str, ack: dict[str, Any]) -> RolloutNode | None:
    """Apply one cmd/ack (see ``record_acks``); the RolloutNode it moved, or None."""
    changed = record_acks([(node_id, ack)])
    return changed[0] if changed else None


def record_status(node_id: str, status: dict[str, Any]) -> bool:
    """A node's retained status: when it comes back online, its offline-waiting rollouts can send.
    Returns True when the node's online flag changed (the ingest writes the full status too)."""
    online = status.get("state") == "online"
    changed = EdgeNode.objects.filter(node_id=node_id).exclude(online=online).update(online=online, last_seen=timezone.now())
    return bool(changed)
