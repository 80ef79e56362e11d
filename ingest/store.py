"""Store a batch of parsed messages in one transaction, with a fixed number of queries.

Duplicates (a (node, channel, seq) already stored: MQTT redelivery after a crash, or a
node resending what was not yet confirmed) are detected by the unique key of
ReceivedMessage inside the same transaction, so a message is stored exactly once even with
several workers. A copy whose bytes differ from the stored one is not a redelivery but a
reused seq: it is dead-lettered (``seq_reused``), never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction

from ingest import const, timeseries
from ingest.models import DeadLetter, EdgeEvent
from ingest.payloads import ParsedMessage
from ingest.sql_chunks import chunked

log = logging.getLogger(__name__)

CHANNEL_CODES = {"telemetry": "t", "events": "e"}
JSON_ROW = "(%s, %s, %s, %s, %s, %s)"


@dataclass
class Incoming:
    parsed: ParsedMessage
    payload: bytes

    @property
    def digest(self) -> int:
        return int.from_bytes(hashlib.blake2b(self.payload, digest_size=8).digest(), "big", signed=True)


@dataclass
class BatchResult:
    stored_rows: int = 0
    stored_events: int = 0
    duplicates: int = 0
    rejected: int = 0
    dead_letters: int = 0
    # asset_id -> {metric_id: (ts, value)}: what changed, for live updates after commit
    latest: dict[int, dict[int, tuple[datetime, float]]] = field(default_factory=dict)
    statuses: dict[str, dict] = field(default_factory=dict)
    event_ids: list[int] = field(default_factory=list)
    rows: list = field(default_factory=list)  # every stored (time, asset_id, metric_id, value), for alert rules


def _claim_seqs(
    items: list[Incoming], now: datetime, watched_metrics: Collection[int] = (),
) -> tuple[set[tuple[str, str, int]], dict[tuple[str, str, int], int | None]]:
    """Insert the batch's (node, channel, seq) keys with their digests (and, for telemetry, the
    readings the alert rules watch). Returns the keys that were new, and for every key already
    stored before this batch, the digest it was stored with (one more query, only when a batch
    holds such copies). Statements in chunks under the database's parameter limit."""
    keys: dict[tuple[str, str, int], tuple[int, str | None]] = {}
    for item in items:
        p = item.parsed
        if p.seq is not None and not p.rejected_whole and p.channel in CHANNEL_CODES:
            key = (p.node_key, CHANNEL_CODES[p.channel], p.seq)
            if key not in keys:
                keys[key] = (item.digest, _watched_rows(p, watched_metrics))
    if not keys:
        return set(), {}
    fresh: set[tuple[str, str, int]] = set()
    with connection.cursor() as cur:
        for chunk in chunked(list(keys.items()), 6, connection):
            params: list = []
            for (node_key, channel, seq), (digest, rows) in chunk:
                params.extend((node_key, channel, seq, now, digest, rows))
            cur.execute(
                "INSERT INTO ingest_receivedmessage (node_key, channel, seq, received_at, digest, alert_rows) "
                f"VALUES {', '.join([JSON_ROW] * len(chunk))} "
                "ON CONFLICT (node_key, channel, seq) DO NOTHING RETURNING node_key, channel, seq",
                params,
            )
            fresh.update((n, c, int(s)) for n, c, s in cur.fetchall())
        seen = [key for key in keys if key not in fresh]
        if not seen:
            return fresh, {}
        stored: dict[tuple[str, str, int], int | None] = {}
        for chunk in chunked(seen, 3, connection):
            cur.execute(
                "SELECT node_key, channel, seq, digest FROM ingest_receivedmessage WHERE (node_key, channel, seq) IN "
                f"(VALUES {', '.join(['(%s, %s, %s)'] * len(chunk))})",
                [v for key in chunk for v in key],
            )
            stored.update({(n, c, int(s)): d for n, c, s, d in cur.fetchall()})
        return fresh, stored


def _watched_rows(p: ParsedMessage, watched_metrics: Collection[int]) -> str | None:
    """The message's readings of watched metrics as JSON text, or None when there are none."""
    if p.channel != "telemetry" or not watched_metrics or not p.rows:
        return None
    rows = [[ts.timestamp(), a, m, v] for ts, a, m, v in p.rows if m in watched_metrics]
    return json.dumps(rows, separators=(",", ":")) if rows else None


def store_batch(items: list[Incoming], now: datetime, watched_metrics: Collection[int] = ()) -> BatchResult:
    """Store every valid reading, event and status of ``items``; dead-letter every reject.
    Readings of ``watched_metrics`` (those with an alert rule) are kept with their message's
    seq for the alert rules (twins/alert_state.py), in the same transaction."""
    result = BatchResult()
    raw_limit = settings.INGEST_DEAD_LETTER_RAW_BYTES
    with transaction.atomic():
        fresh, stored_digests = _claim_seqs(items, now, watched_metrics)
        batch_digests: dict[tuple[str, str, int], int] = {}
        rows: list = []
        events: list[EdgeEvent] = []
        dead: list[DeadLetter] = []
        counts: dict[tuple[str, str], int] = defaultdict(int)
        streams: dict[str, list] = {}  # node -> [first_seq, max_seq, messages, readings, dups, rejected]
        latest: dict[tuple[int, int], tuple[datetime, float]] = {}
        nodes_seen: set[str] = set()
        for item in items:
            p = item.parsed
            stream = None
            if p.node_key and not (p.rejected_whole and p.rejects and p.rejects[0].reason == const.UNKNOWN_NODE):
                stream = streams.setdefault(p.node_key, [None, None, 0, 0, 0, 0])
            if p.seq is not None and not p.rejected_whole and p.channel in CHANNEL_CODES:
                key = (p.node_key, CHANNEL_CODES[p.channel], p.seq)
                if key not in fresh:
                    known = batch_digests.get(key, stored_digests.get(key))
                    if known is not None and known != item.digest:
                        p = _reused_seq(p)  # dead-lettered below with the other rejects
                    else:
                        result.duplicates += 1
                        if stream is not None:
                            stream[4] += 1
                        continue
                else:
                    fresh.discard(key)  # a second copy in this same batch is a duplicate too
                    batch_digests[key] = item.digest
                if p.channel == "telemetry" and stream is not None:
                    stream[0] = p.seq if stream[0] is None else min(stream[0], p.seq)
                    stream[1] = p.seq if stream[1] is None else max(stream[1], p.seq)
                    stream[2] += 1
            if p.node_key and not p.rejected_whole:
                nodes_seen.add(p.node_key)
            if p.rows:
                rows.extend(p.rows)
                if stream is not None:
                    stream[3] += len(p.rows)
                for ts, asset_id, metric_id, value in p.rows:
                    key = (asset_id, metric_id)
                    current = latest.get(key)
                    if current is None or current[0] <= ts:
                        latest[key] = (ts, value)
            for ev in p.events:
                events.append(
                    EdgeEvent(
                        node_key=p.node_key, asset_id=ev.asset_id, ts=ev.ts, received_at=now, kind=ev.kind,
                        severity=ev.severity, message=ev.message, data=ev.data,
                    )
                )
            if p.status is not None:
                result.statuses[p.node_key] = p.status
            for rej in p.rejects:
                counts[(p.node_key[:64], rej.reason)] += rej.count
                result.rejected += rej.count
                if stream is not None:
                    stream[5] += rej.count
                keep = len(item.payload) if rej.reason in KEEP_WHOLE_PAYLOAD else raw_limit
                dead.append(
                    DeadLetter(
                        received_at=now, node_key=p.node_key[:64], topic=printable(p.topic)[:256], reason=rej.reason,
                        detail=printable((f"{rej.count}x: " if rej.count > 1 else "") + rej.detail[:2000]), seq=p.seq,
                        payload=item.payload[:keep], payload_size=len(item.payload),
                    )
                )
        result.stored_rows = timeseries.write_rows(rows)
        result.rows = rows
        if events:
            created = EdgeEvent.objects.bulk_create(events)
            result.stored_events = len(created)
            result.event_ids = [e.pk for e in created if e.pk is not None]
        if dead:
            DeadLetter.objects.bulk_create(dead)
            result.dead_letters = len(dead)
            _add_dead_letter_counts(counts, now)
        _add_streams(streams, now)
        timeseries.upsert_latest(latest)
        _touch(latest, nodes_seen, result.statuses, now)
    for (asset_id, metric_id), (ts, value) in latest.items():
        result.latest.setdefault(asset_id, {})[metric_id] = (ts, value)
    return result


# Dead letters of messages that may hold valid data keep their whole payload (bounded by
# INGEST_MAX_PAYLOAD_BYTES), so an operator can replay them once the cause is fixed.
KEEP_WHOLE_PAYLOAD = (const.STORE_FAILED, const.UNPROCESSABLE, const.SEQ_REUSED)


def printable(text: str) -> str:
    """Text every database takes: NUL and lone surrogates escaped (they come from devices)."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _reused_seq(p: ParsedMessage) -> ParsedMessage:
    """The message as a dead letter: its seq was stored before with other bytes."""
    copy = ParsedMessage(topic=p.topic, node_key=p.node_key, channel=p.channel, seq=p.seq)
    return copy.reject_whole(const.SEQ_REUSED, f"{p.channel} seq {p.seq} was stored before with different content")


def _add_dead_letter_counts(counts: dict[tuple[str, str], int], now: datetime) -> None:
    with connection.cursor() as cur:
        for chunk in chunked(sorted(counts.items()), 4, connection):
            params: list = []
            for (node_key, reason), n in chunk:
                params.extend((node_key, reason, n, now))
            cur.execute(
                f"INSERT INTO ingest_deadlettercount (node_key, reason, count, last_at) VALUES {', '.join(['(%s, %s, %s, %s)'] * len(chunk))} "
                "ON CONFLICT (node_key, reason) DO UPDATE SET count = ingest_deadlettercount.count + excluded.count, "
                "last_at = excluded.last_at",
                params,
            )


def _add_streams(streams: dict[str, list], now: datetime) -> None:
    if not streams:
        return
    t = "ingest_nodestream"
    with connection.cursor() as cur:
        for chunk in chunked(sorted(streams.items()), 8, connection):
            params: list = []
            for node_key, (first, last, messages, readings, dups, rejected) in chunk:
                params.extend((node_key, first, last, messages, readings, dups, rejected, now))
            cur.execute(
                f"INSERT INTO {t} (node_key, first_seq, max_seq, messages, readings, duplicates, rejected, last_at) "
                f"VALUES {', '.join(['(%s, %s, %s, %s, %s, %s, %s, %s)'] * len(chunk))} ON CONFLICT (node_key) DO UPDATE SET "
                f"first_seq = CASE WHEN {t}.first_seq IS NULL OR excluded.first_seq < {t}.first_seq "
                f"THEN excluded.first_seq ELSE {t}.first_seq END, "
                f"max_seq = CASE WHEN {t}.max_seq IS NULL OR excluded.max_seq > {t}.max_seq "
                f"THEN excluded.max_seq ELSE {t}.max_seq END, "
                f"messages = {t}.messages + excluded.messages, readings = {t}.readings + excluded.readings, "
                f"duplicates = {t}.duplicates + excluded.duplicates, rejected = {t}.rejected + excluded.rejected, "
                "last_at = excluded.last_at",
                params,
            )


def _touch(latest: dict, nodes_seen: set[str], statuses: dict[str, dict], now: datetime) -> None:
    from edge_node.models import EdgeNode
    from twins.models import Asset

    asset_ids = sorted({asset_id for asset_id, _metric in latest})
    for chunk in chunked(asset_ids, 1, connection):
        Asset.objects.filter(id__in=chunk).update(last_seen=now)
    for chunk in chunked(sorted(nodes_seen - statuses.keys()), 1, connection):
        EdgeNode.objects.filter(node_id__in=chunk).update(last_seen=now)
    for node_key, status in statuses.items():
        EdgeNode.objects.filter(node_id=node_key).update(
            status=status, status_at=now, last_seen=now, online=status.get("state") == "online"
        )
