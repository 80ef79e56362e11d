"""PostgreSQL: the telemetry write log, which tells incremental readers (the twin refresh) what
was stored since they last looked (see ingest/timeseries.py). Nothing on SQLite."""

from django.db import migrations


def create(apps, schema_editor):
    from ingest import timeseries

    timeseries.create_write_log(schema_editor.connection)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        from ingest import timeseries

        with schema_editor.connection.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {timeseries.WRITES}")


class Migration(migrations.Migration):
    atomic = True
    dependencies = [("ingest", "0002_telemetry_table")]
    operations = [migrations.RunPython(create, drop)]
