"""Deployment checks for the ingest (``manage.py check --deploy``)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.database, deploy=True)
def check_ingest_config(app_configs, **kwargs):
    problems = []
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        problems.append(Warning("Telemetry is stored in SQLite.", hint="Set DATABASE_URL to PostgreSQL (TimescaleDB if available) for production.", id="ingest.W001"))
    if settings.MQTT_EMBEDDED:
        problems.append(Warning("The embedded MQTT broker is in use.", hint="Set MQTT_URL to Mosquitto with per-node credentials.", id="ingest.W002"))
    if settings.INGEST_MAX_PAYLOAD_BYTES > 16 * 1024 * 1024:
        problems.append(Error("INGEST_MAX_PAYLOAD_BYTES is above 16 MiB.", id="ingest.E001"))
    return problems


@register(Tags.database)
def check_telemetry_store(app_configs, databases=None, **kwargs):
    """Run by ``manage.py check --database default`` (and by migrate): the telemetry store's
    shape, a TimescaleDB that is on the server but cannot be used, and its failing jobs."""
    from django.db import DatabaseError, connections

    from ingest.timeseries import store, timescale

    problems = []
    for alias in databases or []:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        try:
            shape = store.shape_of_table(connection)
            facts = store.probe(connection)
            if shape != "timescale" and facts.available and settings.TELEMETRY_STORE == "auto":
                choice = store.choose_store("auto", facts)
                if choice.store == "postgres":
                    problems.append(Warning(
                        "TimescaleDB is on the server but cannot be used; telemetry is stored in PostgreSQL partitions.",
                        hint="; ".join(choice.reasons), id="ingest.W003",
                    ))
                elif shape == "postgres":
                    problems.append(Warning(
                        "TimescaleDB is usable here, but the telemetry table is a partitioned PostgreSQL table.",
                        hint="Run `manage.py telemetry_store --convert-to-timescale` in a maintenance window, "
                        "or set TELEMETRY_STORE=postgres to keep partitions.",
                        id="ingest.W004",
                    ))
            if shape == "timescale":
                for problem in timescale.job_problems(connection):
                    problems.append(Warning(problem, hint="SELECT * FROM timescaledb_information.job_errors", id="ingest.W005"))
        except (DatabaseError, store.StoreError) as exc:
            problems.append(Error(f"The telemetry store cannot be inspected: {exc}", id="ingest.E002"))
    return problems


@register()
def check_telemetry_settings(app_configs, **kwargs):
    from ingest.timeseries import timescale

    effective = timescale.compress_after().days
    if effective > settings.TELEMETRY_COMPRESS_AFTER_DAYS:
        return [Warning(
            f"TELEMETRY_COMPRESS_AFTER_DAYS={settings.TELEMETRY_COMPRESS_AFTER_DAYS} is inside the accepted past window; "
            f"TimescaleDB compresses after {effective} days instead.",
            hint="Late readings (up to INGEST_MAX_PAST_SECONDS old) must never land in a compressed chunk.",
            id="ingest.W006",
        )]
    return []
