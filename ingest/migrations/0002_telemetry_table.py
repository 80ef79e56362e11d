"""Create the telemetry table in the shape this database offers (see ingest/timeseries.py)."""

from django.db import migrations


def create(apps, schema_editor):
    from ingest import timeseries

    timeseries.create_schema(schema_editor.connection)


def drop(apps, schema_editor):
    from ingest import timeseries

    timeseries.drop_schema(schema_editor.connection)


class Migration(migrations.Migration):
    atomic = True
    dependencies = [("ingest", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
