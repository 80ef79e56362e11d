"""Show which telemetry store this database has and why; convert a partitioned store.

    manage.py telemetry_store                       # shape, edition, what TimescaleDB offers, job health
    manage.py telemetry_store --convert-to-timescale  # partitions -> hypertable, rows included
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from ingest import timeseries
from ingest.timeseries import store, timescale


class Command(BaseCommand):
    help = "Show the telemetry store (TimescaleDB or PostgreSQL partitions) and why; convert partitions to a hypertable."

    def add_arguments(self, parser):
        parser.add_argument("--database", default="default")
        parser.add_argument("--convert-to-timescale", action="store_true",
                            help="move a partitioned store into a TimescaleDB hypertable (one transaction; ingest waits meanwhile)")

    def handle(self, *args, database, convert_to_timescale, **options):
        connection = connections[database]
        if connection.vendor == "sqlite":
            self.stdout.write("telemetry store: SQLite (the embedded default)")
            return
        if convert_to_timescale:
            try:
                moved = timeseries.convert_to_hypertable(connection)
            except store.StoreError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"converted: {moved:,} rows moved into the hypertable")
        store.forget(connection)
        shape, edition = store.store_info(connection)
        exists = store.shape_of_table(connection) is not None
        facts = store.probe(connection)
        choice = store.choose_store("auto", facts)
        self.stdout.write(f"telemetry store: {shape}{f' ({edition} edition)' if edition else ''}"
                          f"{'' if exists else ' (not created yet: what migrate would make)'}")
        self.stdout.write(f"TimescaleDB on this server: available={facts.available} installed={facts.installed_version} "
                          f"default={facts.default_version} preloaded={facts.preloaded} loaded={facts.loaded} "
                          f"license={facts.license} superuser={facts.superuser}")
        if choice.reasons and choice.store == "postgres":
            self.stdout.write("TimescaleDB would not be used for a new store: " + "; ".join(choice.reasons))
        if shape == "timescale":
            for problem in timescale.job_problems(connection) or ["TimescaleDB jobs: all healthy"]:
                self.stdout.write(problem)
