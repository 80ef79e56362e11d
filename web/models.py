"""What the web app stores itself: the heartbeats of the platform's processes, and the files
every process on every host reads (model artifacts kept in the database)."""

from __future__ import annotations

from django.db import models


class ProcessHeartbeat(models.Model):
    """One long-running process (ingest worker, Celery worker, beat, rollout listener, web):
    written every HEARTBEAT_INTERVAL_S by the process itself; see web/heartbeats.py."""

    kind = models.CharField(max_length=32)
    name = models.CharField(max_length=128)
    host = models.CharField(max_length=128)
    pid = models.IntegerField()
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(db_index=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["kind", "name", "host"]
        constraints = [models.UniqueConstraint(fields=["kind", "name", "host"], name="process_heartbeat_unique")]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}@{self.host}"


class StoredFile(models.Model):
    """One file of a model artifact, under the name the database gives the artifact (its path,
    or ``<directory>/<file>``); web/file_store.py writes it beside the artifact's row and
    materializes it on a host that lacks it."""

    name = models.CharField(max_length=700, unique=True)
    data = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    stored_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name
