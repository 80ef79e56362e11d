"""Maintenance as one job: partitions created with a backfill writing into the same day,
two maintainers at once (real processes), and each bookkeeping table pruned at its horizon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import psycopg
from django.db import connection
from django.utils import timezone

from edge_node.models import AuditEvent
from ingest import timeseries
from ingest.maintenance import ADVISORY_LOCK_KEY, run_maintenance
from ingest.models import DeadLetter, EdgeEvent, ReceivedMessage
from tests.factories import make_fleet
from tests.helpers import ROOT, database_url_for_subprocess, wait_until
from twins.models import AlertCursor, TwinSnapshot

TABLE = "ingest_telemetry"


def maintain_in_a_process() -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=database_url_for_subprocess())
    return subprocess.Popen([sys.executable, "manage.py", "maintain"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def rows_in(table: str, start: datetime, end: datetime) -> int:
    with connection.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {table} WHERE time >= %s AND time < %s", [start, end])
        return cur.fetchone()[0]


def test_a_backfill_into_a_missing_day_and_two_maintainers_change_nothing_but_what_they_should(transactional_db, postgres):
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    name = f"{TABLE}_p{day:%Y%m%d}"
    with connection.cursor() as cur:  # the day's partition is missing: its rows land in DEFAULT
        cur.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
        cur.execute(f"DROP TABLE {name}")
    written, stop = [0], threading.Event()

    def backfill() -> None:  # an edge outbox replaying that day, in many small transactions
        from django.db import connection as own
        from django.db import transaction

        try:
            i = 0
            while not stop.is_set():
                rows = [(day + timedelta(seconds=i * 10 + k), 1, 1, float(k)) for k in range(10)]
                with transaction.atomic():
                    timeseries.write_rows(rows)
                written[0] += len(rows)
                i += 1
        finally:
            own.close()

    thread = threading.Thread(target=backfill)
    thread.start()
    try:
        wait_until(lambda: written[0] >= 200 or not thread.is_alive(), 30, what="the backfill under way")
        maintainers = [maintain_in_a_process() for _ in range(2)]
        results = [last_json(p.communicate(timeout=60)[0]) for p in maintainers]
        after = written[0] + 50
        wait_until(lambda: written[0] >= after or not thread.is_alive(), 30, what="backfill writes into the new partition")
        assert thread.is_alive(), "the backfill failed"
    finally:
        stop.set()
        thread.join(10)
    ran = [r for r in results if "skipped" not in r]
    assert ran, results
    assert all(r["failed"] == [] and r["telemetry"]["failures"] == [] for r in ran), results
    assert sum(r["telemetry"]["created"] for r in ran) == 1  # that day, once
    assert rows_in(f"{TABLE}_default", day, day + timedelta(days=1)) == 0
    assert rows_in(name, day, day + timedelta(days=1)) == written[0]  # every backfilled row, in its partition
    assert run_maintenance()["telemetry"]["created"] == 0  # and the next hourly run is clean


def test_a_second_maintainer_skips_while_the_first_holds_the_lock(transactional_db, postgres):
    s = connection.settings_dict
    with psycopg.connect(host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"], password=s["PASSWORD"] or None, dbname=s["NAME"], autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        assert last_json(maintain_in_a_process().communicate(timeout=60)[0]) == {"skipped": "locked"}
        other.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])
    assert last_json(maintain_in_a_process().communicate(timeout=60)[0])["failed"] == []


def test_it_prunes_each_bookkeeping_table_at_its_own_horizon(transactional_db, settings):
    settings.KEEP_RECEIVED_MESSAGE_IDS_DAYS = 14
    settings.KEEP_DEAD_LETTERS_DAYS = 30
    settings.KEEP_EDGE_EVENTS_DAYS = 90
    settings.KEEP_AUDIT_EVENTS_DAYS = 730
    settings.KEEP_TWIN_SNAPSHOTS_FULL_DAYS = 7
    fleet = make_fleet(1)
    asset = fleet.assets[0]
    now = timezone.now()

    def ago(days: float) -> datetime:
        return now - timedelta(days=days)

    ReceivedMessage.objects.bulk_create([
        ReceivedMessage(node_key="n1", channel="t", seq=1, received_at=ago(20)),  # evaluated, old: goes
        ReceivedMessage(node_key="n1", channel="t", seq=2, received_at=ago(20)),  # not evaluated yet: stays
        ReceivedMessage(node_key="n1", channel="e", seq=1, received_at=ago(20)),  # an old event id: goes
        ReceivedMessage(node_key="n1", channel="t", seq=3, received_at=ago(1)),  # recent: stays
    ])
    AlertCursor.objects.create(node_key="n1", seq=1)
    DeadLetter.objects.bulk_create([DeadLetter(received_at=ago(d), topic="t", reason="bad_json") for d in (40, 10)])
    EdgeEvent.objects.bulk_create([EdgeEvent(node_key="n1", asset=asset, ts=ago(d), received_at=ago(d), kind="anomaly") for d in (100, 60)])
    old_audit, new_audit = AuditEvent.objects.create(action="enroll"), AuditEvent.objects.create(action="enroll")
    AuditEvent.objects.filter(id=old_audit.id).update(at=ago(800))
    AuditEvent.objects.filter(id=new_audit.id).update(at=ago(400))
    hour = ago(10).replace(minute=0, second=0, microsecond=0)
    TwinSnapshot.objects.bulk_create(
        [TwinSnapshot(asset=asset, computed_at=hour + timedelta(minutes=m), health=0.9) for m in (0, 15, 30, 45)]  # old: one per hour
        + [TwinSnapshot(asset=asset, computed_at=ago(1) + timedelta(minutes=m), health=0.8) for m in (0, 15, 30)]  # recent: all
    )

    result = run_maintenance()

    assert result["failed"] == []
    assert sorted(ReceivedMessage.objects.values_list("channel", "seq")) == [("t", 2), ("t", 3)]
    assert DeadLetter.objects.count() == 1 and EdgeEvent.objects.count() == 1
    assert list(AuditEvent.objects.values_list("id", flat=True)) == [new_audit.id]
    assert TwinSnapshot.objects.filter(computed_at__lt=ago(7)).count() == 1
    assert TwinSnapshot.objects.filter(computed_at__lt=ago(7)).get().computed_at == hour
    assert TwinSnapshot.objects.filter(computed_at__gte=ago(7)).count() == 3
    assert (result["dead_letters"], result["edge_events"], result["audit_events"], result["twin_snapshots"]) == (1, 1, 1, 3)
