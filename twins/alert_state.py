"""Where the alert rules' state lives: in the database, one copy for every ingest worker.

Why the database, in the transaction that changes the alerts: hysteresis and minimum
duration are decisions over a signal's history. With a shared subscription, one node's
messages are spread over several workers, so no worker's memory sees the whole signal, and a
worker killed mid-way would take an alert in progress with it. Redis would add a second
store whose writes could not commit together with the alert rows; routing each node to one
owner would need a router in front of the broker's shared subscription. The database already
holds what each message carried (ReceivedMessage, written in the batch's transaction), so:

- ``take_in_seq_order`` locks each node's AlertCursor and hands back the watched readings of
  the messages that follow it without a gap, in the order the node sent them. A worker that
  stored seq 12 while seq 11 is still with another worker (or with a killed one, whose session
  the broker keeps) leaves 12 for whoever completes the run. The result is the same alerts,
  with the same times, for one worker or three, killed or not.
- ``load_states``/``save_states`` read and write every (asset, metric) ConditionState under
  the same lock, so nothing is decided twice or forgotten; ``load_combined_states``/
  ``save_combined_states`` do the same for every (asset, combined rule): the combination's
  ConditionState and what its conditions remember (last reading and rate per metric, each
  condition's truth), so AND/OR and rate-of-change rules see the whole signal too.

A gap that is neither filled nor dead-lettered within ALERT_SEQ_GAP_WAIT_S is skipped (the
node lost it, or its worker never came back); readings that arrive after that are stored but
not evaluated, and counted as ``late`` in the log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from edge_node.agent import contract
from ingest.models import DeadLetter, ReceivedMessage
from ingest.sql_chunks import chunked
from twins.composite import CombinedState
from twins.models import Alert, AlertCondition, AlertCursor, CombinedCondition
from twins.rules import NORMAL, SEVERITY_LEVELS, ConditionState

log = logging.getLogger(__name__)

Key = tuple[int, int]  # (asset_id, metric_id), or (asset_id, combined_rule_id)
Reading = tuple[datetime, int, int, float]
ACTIVE_STATES = (Alert.State.OPEN, Alert.State.ACKNOWLEDGED)
RUN_LIMIT = 5000  # messages taken per node and call; the rest on the next call
STATE_FIELDS = ("level", "peak", "alert_id", "up_since", "up_level", "down_since", "down_level", "last_ts", "level_since", "lowered")


def load_states(keys: Iterable[Key]) -> dict[Key, ConditionState]:
    """The stored state of each key, locked until the transaction ends (``FOR UPDATE`` in a
    fixed order, so two evaluators cannot deadlock). A key never seen continues the active
    alert it may have (opened before state was stored), else starts normal."""
    wanted = sorted(set(keys))
    states: dict[Key, ConditionState] = {}
    if not wanted:
        return states
    assets = sorted({a for a, _m in wanted})
    metrics = sorted({m for _a, m in wanted})
    rows = (
        AlertCondition.objects.select_for_update().filter(asset_id__in=assets, metric_id__in=metrics)
        .order_by("asset_id", "metric_id").values_list("asset_id", "metric_id", *STATE_FIELDS)
    )
    wanted_set = set(wanted)
    for asset_id, metric_id, *fields in rows:
        if (asset_id, metric_id) in wanted_set:
            states[(asset_id, metric_id)] = ConditionState(**dict(zip(STATE_FIELDS, fields, strict=True)))
    missing = [k for k in wanted if k not in states]
    if missing:
        seeded = _seeded(missing, Alert.objects.filter(source=Alert.Source.RULE, metric_id__in={m for _, m in missing}), "metric_id")
        for key in missing:
            states[key] = seeded.get(key) or ConditionState()
    return states


def load_combined_states(keys: Iterable[Key]) -> dict[Key, CombinedState]:
    """Like ``load_states``, for (asset, combined rule) keys."""
    wanted = sorted(set(keys))
    states: dict[Key, CombinedState] = {}
    if not wanted:
        return states
    rows = (
        CombinedCondition.objects.select_for_update().filter(asset_id__in=sorted({a for a, _ in wanted}), rule_id__in=sorted({r for _, r in wanted}))
        .order_by("asset_id", "rule_id").values_list("asset_id", "rule_id", "signals", *STATE_FIELDS)
    )
    wanted_set = set(wanted)
    for asset_id, rule_id, signals, *fields in rows:
        if (asset_id, rule_id) in wanted_set:
            alert = ConditionState(**dict(zip(STATE_FIELDS, fields, strict=True)))
            states[(asset_id, rule_id)] = CombinedState.from_signals(signals or {}, alert)
    missing = [k for k in wanted if k not in states]
    if missing:
        seeded = _seeded(missing, Alert.objects.filter(combined_rule_id__in={r for _, r in missing}), "combined_rule_id")
        for key in missing:
            states[key] = CombinedState(alert=seeded.get(key) or ConditionState())
    return states


def _seeded(missing: list[Key], alerts, rule_field: str) -> dict[Key, ConditionState]:
    """A state for each key that has an active alert but no stored state yet (opened before
    state was stored): it continues that alert."""
    active = alerts.filter(state__in=ACTIVE_STATES, asset_id__in={a for a, _ in missing}).values_list("id", "asset_id", rule_field, "severity")
    seeded = {}
    for alert_id, asset_id, key, severity in active:
        level = SEVERITY_LEVELS.get(severity, NORMAL) or 1
        seeded[(asset_id, key)] = ConditionState(level=level, peak=level, alert_id=alert_id)
    return seeded


def save_states(states: dict[Key, ConditionState]) -> None:
    rows = [(a, m, *(getattr(s, f) for f in STATE_FIELDS)) for (a, m), s in sorted(states.items())]
    _upsert(AlertCondition._meta.db_table, ("asset_id", "metric_id"), STATE_FIELDS, rows)


def save_combined_states(states: dict[Key, CombinedState]) -> None:
    rows = [
        (a, r, json.dumps(s.signals(), separators=(",", ":")), *(getattr(s.alert, f) for f in STATE_FIELDS))
        for (a, r), s in sorted(states.items())
    ]
    _upsert(CombinedCondition._meta.db_table, ("asset_id", "rule_id"), ("signals", *STATE_FIELDS), rows)


def _upsert(table: str, keys: tuple[str, ...], columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert or update ``rows`` (keys then columns) in key order, in statements under the
    database's parameter limit. Plain SQL: every batch writes every state it touched, and
    Django's bulk_create spent about as long compiling the rows as the database spent on them
    (profiled: 100 combined states per batch)."""
    if not rows:
        return
    names = [*keys, *columns]
    row_sql = "(" + ", ".join(["%s"] * len(names)) + ")"
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
    with connection.cursor() as cur:
        for chunk in chunked(rows, len(names), connection):
            cur.execute(
                f"INSERT INTO {table} ({', '.join(names)}) VALUES {', '.join([row_sql] * len(chunk))} "
                f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}",
                [v for row in chunk for v in row],
            )


def take_in_seq_order(node_keys: Collection[str], watched: Collection[int], now: datetime | None = None) -> tuple[list[Reading], dict]:
    """Lock the cursors of ``node_keys`` and return the watched readings of every message that
    follows a cursor without a gap, in seq order (each message's readings in time order); the
    cursors move past them when the caller's transaction commits."""
    now = now or timezone.now()
    readings: list[Reading] = []
    stats = {"messages": 0, "skipped_seqs": 0}
    for node_key in sorted(set(node_keys)):
        cursor = _lock_cursor(node_key)
        if cursor is None:
            continue
        expected = cursor.seq + 1
        pending = (
            ReceivedMessage.objects.filter(node_key=node_key, channel="t", seq__gt=cursor.seq)
            .order_by("seq").values_list("seq", "alert_rows", "received_at")[:RUN_LIMIT]
        )
        for seq, rows, received_at in pending:
            if seq != expected:
                if not _gap_settled(node_key, expected, seq, received_at, now):
                    break
                stats["skipped_seqs"] += seq - expected
                log.warning("alert rules skip telemetry seq %d..%d of %s: not received within %.0f s", expected, seq - 1, node_key, settings.ALERT_SEQ_GAP_WAIT_S)
            if rows:
                message = [(datetime.fromtimestamp(ts, UTC), a, m, v) for ts, a, m, v in rows if m in watched]
                message.sort(key=lambda r: r[0])
                readings.extend(message)
            stats["messages"] += 1
            expected = seq + 1
        if expected - 1 != cursor.seq:
            AlertCursor.objects.filter(id=cursor.id).update(seq=expected - 1, updated_at=now)
    return readings, stats


def nodes_behind() -> list[str]:
    """Nodes with stored telemetry past their alert cursor (a gap waiting, or a failed run)."""
    behind = ReceivedMessage.objects.filter(channel="t", node_key=OuterRef("node_key"), seq__gt=OuterRef("seq"))
    return list(AlertCursor.objects.filter(Exists(behind)).values_list("node_key", flat=True))


def _lock_cursor(node_key: str) -> AlertCursor | None:
    """The node's cursor, locked; created just before its first stored telemetry seq."""
    cursor = AlertCursor.objects.select_for_update().filter(node_key=node_key).first()
    if cursor is not None:
        return cursor
    first = ReceivedMessage.objects.filter(node_key=node_key, channel="t").order_by("seq").values_list("seq", flat=True).first()
    if first is None:
        return None
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO twins_alertcursor (node_key, seq, updated_at) VALUES (%s, %s, %s) ON CONFLICT (node_key) DO NOTHING",
            [node_key, first - 1, timezone.now()],
        )
    return AlertCursor.objects.select_for_update().filter(node_key=node_key).first()


def _gap_settled(node_key: str, first_missing: int, next_seq: int, next_received_at: datetime, now: datetime) -> bool:
    """Whether the seqs before ``next_seq`` will not come any more: every one was dead-lettered,
    or the message after them has waited ALERT_SEQ_GAP_WAIT_S."""
    if now - next_received_at >= timedelta(seconds=settings.ALERT_SEQ_GAP_WAIT_S):
        return True
    dead = (
        DeadLetter.objects.filter(node_key=node_key, topic=contract.topic(node_key, "telemetry"), seq__gte=first_missing, seq__lt=next_seq)
        .aggregate(n=Count("seq", distinct=True))["n"]
    )
    return dead == next_seq - first_missing
