"""Creating, converting and maintaining the telemetry table in each of its shapes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db import connection as default_connection

from ingest.timeseries import store, timescale
from ingest.timeseries.store import TABLE

log = logging.getLogger(__name__)

# PostgreSQL: one row per write (its transaction id, earliest reading time, assets), so that a
# reader can ask which assets got rows since it last looked (see incremental.readings_since).
WRITES = "ingest_telemetry_writes"
WRITES_KEPT = timedelta(days=1)  # readers read in full far more often (twins: TWIN_FULL_READ_S)
_COLUMNS = "time timestamptz NOT NULL, asset_id integer NOT NULL, metric_id integer NOT NULL, value double precision NOT NULL"


def create_schema(connection=default_connection, use_timescale: bool | None = None) -> str:
    """Create the telemetry table in the shape this database should have (see store.py);
    return that shape. An existing table keeps its shape. ``use_timescale`` overrides
    TELEMETRY_STORE (False: partitions; True: TimescaleDB or an error)."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cur:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (time REAL NOT NULL, asset_id INTEGER NOT NULL, "
                "metric_id INTEGER NOT NULL, value REAL NOT NULL)"
            )
            cur.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_asset_metric_time ON {TABLE} (asset_id, metric_id, time)")
        return "sqlite"
    store.forget(connection)
    existing = store.shape_of_table(connection)
    if existing is None:
        setting = settings.TELEMETRY_STORE if use_timescale is None else ("timescale" if use_timescale else "postgres")
        choice = store.choose_store(setting, store.probe(connection))
        if choice.store == "postgres" and setting == "auto" and choice.reasons:
            # A warning only when TimescaleDB is there but cannot be used; its absence is normal.
            level = logging.WARNING if store.probe(connection).available else logging.INFO
            log.log(level, "telemetry store: plain PostgreSQL partitions, not TimescaleDB: %s", "; ".join(choice.reasons))
        shape = choice.store
        with connection.cursor() as cur:
            if shape == "timescale":
                cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                timescale.create_hypertable(cur)
            else:
                _create_partitioned(cur)
    else:
        shape = existing
    create_write_log(connection)
    store.forget(connection)
    maintain(connection)
    return shape


def create_aggregates(connection=default_connection) -> bool:
    """TimescaleDB Community: the minute aggregate and its refresh policy (outside a
    transaction). False where the store has none (PostgreSQL, Apache edition, SQLite)."""
    if connection.vendor == "sqlite":
        return False
    store.forget(connection)
    if store.store_info(connection) != ("timescale", "community"):
        return False
    created = timescale.create_minute_aggregate(connection)
    store.forget(connection)
    maintain(connection)
    return created


def _create_partitioned(cur) -> None:
    cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({_COLUMNS}) PARTITION BY RANGE (time)")
    cur.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_asset_metric_time ON {TABLE} (asset_id, metric_id, time DESC)")
    cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE}_default PARTITION OF {TABLE} DEFAULT")


def create_write_log(connection=default_connection) -> None:
    """PostgreSQL: the table of writes (see WRITES). SQLite needs none: its rowids grow."""
    if connection.vendor == "sqlite":
        return
    with connection.cursor() as cur:
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {WRITES} (xid xid8 NOT NULL DEFAULT pg_current_xact_id(), "
            "stored_at timestamptz NOT NULL DEFAULT now(), min_time timestamptz NOT NULL, assets integer[] NOT NULL)"
        )
        cur.execute(f"CREATE INDEX IF NOT EXISTS {WRITES}_xid ON {WRITES} (xid)")


def drop_schema(connection=default_connection) -> None:
    with connection.cursor() as cur:
        if connection.vendor != "sqlite":
            cur.execute(f"DROP MATERIALIZED VIEW IF EXISTS {timescale.MINUTE_AGGREGATE} CASCADE")
        cur.execute(f"DROP TABLE IF EXISTS {TABLE}" + ("" if connection.vendor == "sqlite" else " CASCADE"))
        if connection.vendor != "sqlite":
            cur.execute(f"DROP TABLE IF EXISTS {WRITES}")
    store.forget(connection)


def convert_to_hypertable(connection=default_connection) -> int:
    """Turn a partitioned store into a TimescaleDB hypertable, rows included, in one
    transaction (ingest waits on the lock meanwhile). Returns the rows moved."""
    from django.db import transaction

    if store.shape_of_table(connection) != "postgres":
        raise store.StoreError(f"{TABLE} is not a partitioned PostgreSQL table; nothing to convert")
    store.choose_store("timescale", store.probe(connection))  # raises with the reasons when it cannot
    with transaction.atomic(using=connection.alias), connection.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        cur.execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_partitioned")
        cur.execute(f"ALTER INDEX IF EXISTS {TABLE}_asset_metric_time RENAME TO {TABLE}_partitioned_amt")
        timescale.create_hypertable(cur)
        cur.execute(f"INSERT INTO {TABLE} (time, asset_id, metric_id, value) SELECT time, asset_id, metric_id, value FROM {TABLE}_partitioned")
        moved = cur.rowcount
        cur.execute(f"DROP TABLE {TABLE}_partitioned CASCADE")
    store.forget(connection)
    create_aggregates(connection)
    maintain(connection)
    return moved


def _create_partition(connection, name: str, start: datetime, end: datetime) -> None:
    """Create, fill and attach one day in one transaction. Writers are held at the parent
    table first (SHARE ROW EXCLUSIVE conflicts with their ROW EXCLUSIVE): a backfill (an edge
    outbox replaying old hours) waits for the commit and is then routed to the new partition,
    instead of slipping into DEFAULT between the move and the ATTACH (which made the ATTACH,
    and every run after it, fail). Locking only DEFAULT is not enough: a COPY routed to
    DEFAULT before the lock fails the partition check once it gets through. The hold lasts
    as long as moving that day's rows out of DEFAULT: milliseconds, except after downtime."""
    with transaction.atomic(using=connection.alias), connection.cursor() as cur:
        cur.execute(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE")
        cur.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cur.execute(
            f"WITH moved AS (DELETE FROM {TABLE}_default WHERE time >= %s AND time < %s RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved",
            [start, end],
        )
        cur.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [start, end])


def _partition_name(day: datetime) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def maintain(connection=default_connection, now: datetime | None = None) -> dict:
    """Keep the store in shape: partitions ahead and retention (PostgreSQL), policies
    reconciled with the settings and job health (TimescaleDB), retention (SQLite).
    Safe to call often (workers call it hourly)."""
    now = now or datetime.now(UTC)
    shape, edition = store.store_info(connection)
    retention_start = now - timedelta(days=settings.TELEMETRY_RETENTION_DAYS)
    result: dict = {"created": 0, "dropped": 0, "deleted": 0}
    if shape == "sqlite":
        with connection.cursor() as cur:
            cur.execute(f"DELETE FROM {TABLE} WHERE time < %s", [retention_start.timestamp()])
            result["deleted"] = cur.rowcount
        return result
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {WRITES} WHERE stored_at < %s", [now - WRITES_KEPT])
    if shape == "timescale":
        result["changes"] = timescale.reconcile(connection, edition)
        if edition == "apache":
            result["dropped"] = timescale.drop_expired_chunks(connection)
        result["job_problems"] = timescale.job_problems(connection, now)
        for problem in result["job_problems"]:
            log.warning("%s", problem)
        return result
    return _maintain_partitions(connection, now, retention_start, result)


def _maintain_partitions(connection, now: datetime, retention_start: datetime, result: dict) -> dict:
    step = timedelta(days=settings.TELEMETRY_PARTITION_DAYS)
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    # Partitions cover the accepted window: max past age (capped by retention) to 2 steps ahead.
    oldest = max(now - timedelta(seconds=settings.INGEST_MAX_PAST_SECONDS), retention_start)
    start = epoch + ((oldest - epoch) // step) * step
    stop = now + timedelta(seconds=settings.INGEST_MAX_FUTURE_SECONDS) + 2 * step
    created = dropped = 0
    failures: list[str] = []
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
            [TABLE],
        )
        existing = {name for (name,) in cur.fetchall()}
    day = start
    while day < stop:
        name = _partition_name(day)
        if name not in existing:
            try:
                _create_partition(connection, name, day, day + step)
                created += 1
            except DatabaseError as exc:
                # One day that cannot be created must not stop the others, nor the drops.
                failures.append(f"{name}: {exc}")
                log.error("telemetry partition %s not created: %s", name, exc)
        day += step
    with transaction.atomic(using=connection.alias), connection.cursor() as cur:
        for name in sorted(existing):
            if not name.startswith(f"{TABLE}_p"):
                continue
            day = datetime.strptime(name[len(TABLE) + 2 :], "%Y%m%d").replace(tzinfo=UTC)
            if day + step <= retention_start:
                cur.execute(f"DROP TABLE {name}")
                dropped += 1
        cur.execute(f"DELETE FROM {TABLE}_default WHERE time < %s", [retention_start])
    result["failures"] = failures
    if created or dropped:
        log.info("telemetry partitions: %d created, %d dropped", created, dropped)
    result.update(created=created, dropped=dropped)
    return result
