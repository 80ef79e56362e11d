"""TimescaleDB: the hypertable, its policies kept in step with the settings, the minute
aggregate, and the health of TimescaleDB's own jobs.

Policies are reconciled, not added once: every maintenance run compares the chunk interval,
the compression and retention policies and the aggregate's refresh policy with the settings
and changes what differs (``alter_job``), so a changed ``TELEMETRY_RETENTION_DAYS`` reaches
TimescaleDB. Compression starts only after the accepted past window
(``INGEST_MAX_PAST_SECONDS``) plus one chunk: a late reading never lands in a compressed chunk,
so it can never wait on compression's locks (and COPY never meets a compressed chunk).
The Apache edition has neither compression nor policies: retention is ``drop_chunks`` from
the maintenance job.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime, timedelta

from django.conf import settings

from ingest.timeseries.buckets import BUCKET_ORIGIN_SQL
from ingest.timeseries.store import TABLE

log = logging.getLogger(__name__)

MINUTE_AGGREGATE = f"{TABLE}_1m"


def chunk_interval() -> timedelta:
    return timedelta(hours=settings.TELEMETRY_CHUNK_HOURS)


def compress_after() -> timedelta:
    """The configured compression age, moved past the accepted past window and one chunk."""
    floor_days = math.ceil(settings.INGEST_MAX_PAST_SECONDS / 86400 + settings.TELEMETRY_CHUNK_HOURS / 24)
    return timedelta(days=max(settings.TELEMETRY_COMPRESS_AFTER_DAYS, floor_days))


def refresh_start_offset() -> timedelta:
    """The minute aggregate re-reads the accepted past window, so late readings reach it."""
    return timedelta(seconds=settings.INGEST_MAX_PAST_SECONDS) + timedelta(days=1)


def _interval(delta: timedelta) -> str:
    return f"{int(delta.total_seconds())} seconds"


def create_hypertable(cur) -> None:
    """The table as a hypertable, without TimescaleDB's default ``(time DESC)`` index: every
    query here filters by asset and metric first, so that index would only slow ingest."""
    cur.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (time timestamptz NOT NULL, asset_id integer NOT NULL, "
        "metric_id integer NOT NULL, value double precision NOT NULL)"
    )
    cur.execute(
        f"SELECT create_hypertable('{TABLE}', by_range('time', INTERVAL '{_interval(chunk_interval())}'), "
        "create_default_indexes => FALSE, if_not_exists => TRUE)"
    )
    cur.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_asset_metric_time ON {TABLE} (asset_id, metric_id, time DESC)")


def _jobs(cur) -> dict[str, tuple[int, dict, timedelta]]:
    """proc_name -> (job_id, config, schedule) of the policies on our table and aggregate."""
    cur.execute(
        "SELECT j.proc_name, j.job_id, j.config, j.schedule_interval FROM timescaledb_information.jobs j "
        "WHERE j.hypertable_name IN (%s, %s) OR (j.proc_name = 'policy_refresh_continuous_aggregate' AND "
        "j.hypertable_name IN (SELECT materialization_hypertable_name FROM timescaledb_information.continuous_aggregates "
        "WHERE view_name = %s))",
        [TABLE, MINUTE_AGGREGATE, MINUTE_AGGREGATE],
    )
    out = {}
    for name, job_id, config, schedule in cur.fetchall():
        out[name] = (job_id, config if isinstance(config, dict) else json.loads(config or "{}"), schedule)
    return out


def has_minute_aggregate(cur) -> bool:
    cur.execute("SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE view_name = %s", [MINUTE_AGGREGATE])
    return cur.fetchone() is not None


def reconcile(connection, edition: str) -> list[str]:
    """Bring chunk interval and policies in line with the settings; return what changed."""
    changes: list[str] = []
    with connection.cursor() as cur:
        cur.execute(
            "SELECT time_interval FROM timescaledb_information.dimensions WHERE hypertable_name = %s AND column_name = 'time'",
            [TABLE],
        )
        row = cur.fetchone()
        if row and row[0] != chunk_interval():
            cur.execute(f"SELECT set_chunk_time_interval('{TABLE}', INTERVAL '{_interval(chunk_interval())}')")
            changes.append(f"chunk interval {row[0]} -> {chunk_interval()}")
        if edition != "community":
            return changes
        jobs = _jobs(cur)
        cur.execute("SELECT compression_enabled FROM timescaledb_information.hypertables WHERE hypertable_name = %s", [TABLE])
        if not cur.fetchone()[0]:
            cur.execute(
                f"ALTER TABLE {TABLE} SET (timescaledb.compress, timescaledb.compress_segmentby = 'asset_id, metric_id', "
                "timescaledb.compress_orderby = 'time DESC')"
            )
            changes.append("compression enabled")
        changes += _policy(cur, jobs, "policy_compression", "compress_after", compress_after(),
                           f"SELECT add_compression_policy('{TABLE}', INTERVAL '{_interval(compress_after())}')")
        retention = timedelta(days=settings.TELEMETRY_RETENTION_DAYS)
        changes += _policy(cur, jobs, "policy_retention", "drop_after", retention,
                           f"SELECT add_retention_policy('{TABLE}', INTERVAL '{_interval(retention)}')")
        if has_minute_aggregate(cur):
            changes += _policy(
                cur, jobs, "policy_refresh_continuous_aggregate", "start_offset", refresh_start_offset(),
                f"SELECT add_continuous_aggregate_policy('{MINUTE_AGGREGATE}', start_offset => INTERVAL "
                f"'{_interval(refresh_start_offset())}', end_offset => INTERVAL '1 minute', "
                "schedule_interval => INTERVAL '1 minute')",
            )
    if changes:
        log.info("TimescaleDB reconciled with the settings: %s", "; ".join(changes))
    return changes


def _policy(cur, jobs: dict, proc: str, key: str, want: timedelta, add_sql: str) -> list[str]:
    found = jobs.get(proc)
    if found is None:
        cur.execute(add_sql)
        return [f"{proc} added ({key} {_interval(want)})"]
    job_id, config, _schedule = found
    have = None
    if isinstance(config.get(key), str):  # the interval as TimescaleDB wrote it: let PostgreSQL read it
        cur.execute("SELECT EXTRACT(EPOCH FROM %s::interval)", [config[key]])
        have = float(cur.fetchone()[0])
    if have is not None and abs(have - want.total_seconds()) < 1:
        return []
    config = dict(config, **{key: _interval(want)})
    cur.execute("SELECT alter_job(%s, config => %s::jsonb)", [job_id, json.dumps(config)])
    return [f"{proc} {key} {config.get(key)} (was {have:.0f} seconds)" if have is not None else f"{proc} {key} {config.get(key)}"]


def drop_expired_chunks(connection) -> int:
    """Apache edition (no retention policy): drop chunks past retention ourselves."""
    older = datetime.now(UTC) - timedelta(days=settings.TELEMETRY_RETENTION_DAYS)
    with connection.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM drop_chunks('{TABLE}', older_than => %s)", [older])
        return int(cur.fetchone()[0])


def job_problems(connection, now: datetime | None = None) -> list[str]:
    """TimescaleDB's own jobs on our objects that failed last time or are overdue."""
    now = now or datetime.now(UTC)
    problems = []
    with connection.cursor() as cur:
        jobs = _jobs(cur)
        if not jobs:
            return []
        ids = {job_id: name for name, (job_id, _c, _s) in jobs.items()}
        cur.execute(
            "SELECT job_id, last_run_status, next_start, total_failures FROM timescaledb_information.job_stats "
            "WHERE job_id = ANY(%s)",
            [list(ids)],
        )
        for job_id, status, next_start, failures in cur.fetchall():
            name = ids[job_id]
            schedule = jobs[name][2] or timedelta(days=1)
            if status == "Failed":
                problems.append(f"TimescaleDB job {job_id} ({name}) failed on its last run ({failures} failures in all)")
            elif next_start is not None and next_start < now - 2 * schedule:
                problems.append(f"TimescaleDB job {job_id} ({name}) is overdue since {next_start:%Y-%m-%d %H:%M} UTC")
    return problems


def create_minute_aggregate(connection) -> bool:
    """The 1-minute continuous aggregate (min, max, sum, count per asset and metric), with
    real-time results, created without data; outside a transaction (TimescaleDB refuses one).
    Returns whether it was created now."""
    with connection.cursor() as cur:
        if has_minute_aggregate(cur):
            return False
        cur.execute(
            f"CREATE MATERIALIZED VIEW {MINUTE_AGGREGATE} WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS "
            f"SELECT asset_id, metric_id, time_bucket(INTERVAL '1 minute', time, {BUCKET_ORIGIN_SQL}) AS bucket, "
            f"min(value) AS min, max(value) AS max, sum(value) AS sum, count(*) AS count FROM {TABLE} "
            "GROUP BY asset_id, metric_id, bucket WITH NO DATA"
        )
    return True
