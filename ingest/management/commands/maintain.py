"""Run the maintenance job once (what celery beat runs every MAINTENANCE_INTERVAL_S)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from ingest.maintenance import run_maintenance


class Command(BaseCommand):
    help = "Telemetry partitions and retention, and pruning of the bookkeeping tables, under an advisory lock."

    def handle(self, *args, **options) -> None:
        self.stdout.write(json.dumps(run_maintenance(), default=str))
