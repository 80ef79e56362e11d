"""Process heartbeats: every long-running process writes one row (kind, name, host) every
HEARTBEAT_INTERVAL_S from a daemon thread; ``manage.py status``, the nodes page, the admin and
/metrics read them. A process is up while its last beat is younger than 3 intervals."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

log = logging.getLogger(__name__)

INGEST, CELERY_WORKER, BEAT, LISTENER, WEB, EMBEDDED = "ingest", "celery-worker", "celery-beat", "rollout-listener", "web", "embedded"
MISSED_BEATS = 3


@dataclass(frozen=True)
class HeartbeatView:
    kind: str
    name: str
    host: str
    pid: int
    started_at: datetime
    beat_at: datetime
    age_s: float
    alive: bool


def heartbeat_rows(now: datetime | None = None) -> list[HeartbeatView]:
    from web.models import ProcessHeartbeat

    now = now or timezone.now()
    limit = MISSED_BEATS * settings.HEARTBEAT_INTERVAL_S
    rows = []
    for hb in ProcessHeartbeat.objects.all():
        age = max(0.0, (now - hb.beat_at).total_seconds())
        rows.append(HeartbeatView(hb.kind, hb.name, hb.host, hb.pid, hb.started_at, hb.beat_at, age, age <= limit))
    return rows


class Heartbeat:
    """Beats for one process until stop(); the first beat is written before start() returns."""

    def __init__(self, kind: str, name: str = "main", *, interval_s: float | None = None, detail=None) -> None:
        self.kind, self.name = kind, name
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.interval_s = interval_s or settings.HEARTBEAT_INTERVAL_S
        self.started_at = timezone.now()
        self.detail = detail  # a callable giving a small JSON dict (e.g. counters), or None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        from web.models import ProcessHeartbeat

        ProcessHeartbeat.objects.update_or_create(
            kind=self.kind, name=self.name, host=self.host,
            defaults={"pid": self.pid, "started_at": self.started_at, "beat_at": timezone.now(), "detail": self.detail() if self.detail else {}},
        )

    def _safe_beat(self) -> None:
        try:
            close_old_connections()
            self.beat()
        except DatabaseError as exc:  # the database is down: the next beat tries again
            log.warning("heartbeat of %s %s not written: %s", self.kind, self.name, exc)
        except Exception:
            log.exception("heartbeat of %s %s failed", self.kind, self.name)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval_s):
                self._safe_beat()
        finally:
            connection.close()

    def start(self) -> Heartbeat:
        self._safe_beat()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.kind}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
