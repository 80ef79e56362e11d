"""TimescaleDB (Community): the 1-minute continuous aggregate of the telemetry, created without
data and outside a transaction (TimescaleDB refuses one), with its refresh policy. Nothing on
plain PostgreSQL, the Apache edition or SQLite."""

from django.db import migrations


def create(apps, schema_editor):
    from ingest.timeseries import schema

    schema.create_aggregates(schema_editor.connection)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        from ingest.timeseries import store, timescale

        with schema_editor.connection.cursor() as cur:
            cur.execute(f"DROP MATERIALIZED VIEW IF EXISTS {timescale.MINUTE_AGGREGATE} CASCADE")
        store.forget(schema_editor.connection)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("ingest", "0004_received_message_digest")]
    operations = [migrations.RunPython(create, drop)]
