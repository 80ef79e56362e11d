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
