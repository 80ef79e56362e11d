"""Celery tasks of the ingest side: the one periodic maintenance job."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="ingest.maintain", ignore_result=True)
def maintain_task() -> dict:
    """Partitions, retention and pruning (ingest/maintenance.py); beat runs it every
    MAINTENANCE_INTERVAL_S. A second run at the same time skips (advisory lock)."""
    from ingest.maintenance import run_maintenance

    return run_maintenance()
