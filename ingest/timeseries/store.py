"""Which telemetry store this database has, or should get: decided from the database.

For an existing table its shape decides (``shape_of_table``): a hypertable is TimescaleDB,
a partitioned table is plain PostgreSQL, whatever extensions were added since (the official
TimescaleDB image creates the extension in every database; a restore onto such a server
must not flip a partitioned store). For a new table ``TELEMETRY_STORE`` decides:
``postgres`` never uses TimescaleDB; ``timescale`` requires it and stops with the reasons
when it cannot be used; ``auto`` (the default) uses it only when it is usable, and falls back
to partitions otherwise, with the reasons in ``manage.py check`` (``ingest.W003``).

Usable means: installed on the server, at least ``MIN_TIMESCALE`` (2.15.2: ``by_range`` needs
2.13 and COPY into compressed chunks crashed backends before 2.15.2), its library loaded (in
``shared_preload_libraries``: ``CREATE EXTENSION`` without it ends the connection with FATAL),
and either created in this database already or creatable by us (superuser), and no ``FOR ALL
TABLES`` publication (``create_hypertable`` refuses on 2.20+). The licence decides the
edition: Community (``timescale``) gets compression, policies and continuous aggregates;
Apache gets the hypertable and retention by ``drop_chunks`` from our maintenance job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings

TABLE = "ingest_telemetry"
STORES = ("auto", "timescale", "postgres")
MIN_TIMESCALE = (2, 15, 2)


class StoreError(RuntimeError):
    """TELEMETRY_STORE=timescale on a database that cannot serve it, or an unknown shape."""


@dataclass(frozen=True)
class TimescaleFacts:
    """What the server says about TimescaleDB (``probe``)."""

    available: bool = False  # the package is on the server (pg_available_extensions)
    installed_version: str | None = None  # CREATE EXTENSION done in this database
    default_version: str | None = None  # what CREATE EXTENSION would install
    preloaded: bool = False  # in shared_preload_libraries
    loaded: bool = False  # its settings are visible in this session (the library is loaded)
    license: str | None = None  # 'timescale' (Community) or 'apache'; None when not loaded
    superuser: bool = False  # may CREATE EXTENSION timescaledb
    all_tables_publication: bool = False


@dataclass(frozen=True)
class StoreChoice:
    store: str  # 'timescale' or 'postgres'
    edition: str = ""  # 'community' or 'apache' with TimescaleDB
    reasons: tuple[str, ...] = ()  # why TimescaleDB is not used (auto fell back), or why it must not be


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """'2.23.0-dev' -> (2, 23, 0); None when there is no version."""
    if not text:
        return None
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g or 0) for g in m.groups()) if m else None


def choose_store(setting: str, facts: TimescaleFacts) -> StoreChoice:
    """Pure: the store for a new table, given TELEMETRY_STORE and what the server says."""
    if setting not in STORES:
        raise StoreError(f"TELEMETRY_STORE must be one of {', '.join(STORES)}, got {setting!r}")
    if setting == "postgres":
        return StoreChoice("postgres", reasons=("TELEMETRY_STORE=postgres",))
    problems: list[str] = []
    version_text = facts.installed_version or facts.default_version
    version = parse_version(version_text)
    if not facts.available and not facts.installed_version:
        problems.append("the timescaledb extension is not installed on the server")
    else:
        if version is None or version < MIN_TIMESCALE:
            floor = ".".join(map(str, MIN_TIMESCALE))
            problems.append(f"TimescaleDB {version_text or '?'} is older than the supported {floor}")
        if not (facts.preloaded or facts.loaded):
            problems.append("timescaledb is not in shared_preload_libraries (CREATE EXTENSION would end the connection)")
        if not facts.installed_version and not facts.superuser:
            problems.append("the extension is not created in this database and this role may not create it (needs a superuser)")
        if facts.all_tables_publication and version is not None and version >= (2, 20):
            problems.append("a FOR ALL TABLES publication exists: create_hypertable refuses on TimescaleDB 2.20+")
    if problems:
        if setting == "timescale":
            raise StoreError("TELEMETRY_STORE=timescale, but TimescaleDB cannot be used: " + "; ".join(problems))
        return StoreChoice("postgres", reasons=tuple(problems))
    edition = "community" if facts.license in (None, "timescale") else "apache"
    return StoreChoice("timescale", edition=edition)


def probe(connection) -> TimescaleFacts:
    """Ask the server (read-only queries; never CREATE EXTENSION)."""
    with connection.cursor() as cur:
        cur.execute("SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'timescaledb'")
        row = cur.fetchone()
        cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
        installed = cur.fetchone()
        cur.execute("SELECT current_setting('shared_preload_libraries'), current_setting('timescaledb.license', true)")
        preload, license_ = cur.fetchone()
        cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        superuser = bool((cur.fetchone() or [False])[0])
        cur.execute("SELECT EXISTS (SELECT 1 FROM pg_publication WHERE puballtables)")
        all_tables = bool(cur.fetchone()[0])
    return TimescaleFacts(
        available=row is not None,
        installed_version=installed[0] if installed else None,
        default_version=row[0] if row else None,
        preloaded="timescaledb" in (preload or ""),
        loaded=license_ is not None,
        license=license_,
        superuser=superuser,
        all_tables_publication=all_tables,
    )


def shape_of_table(connection) -> str | None:
    """'sqlite', 'timescale' (a hypertable), 'postgres' (a partitioned table), or None when the
    table does not exist yet. A plain, unpartitioned PostgreSQL table is refused."""
    if connection.vendor == "sqlite":
        return "sqlite"
    if connection.vendor != "postgresql":
        raise StoreError(f"unsupported database vendor {connection.vendor!r}")
    with connection.cursor() as cur:
        cur.execute("SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(%s)", [TABLE])
        row = cur.fetchone()
        if row is None:
            return None
        if row[0] == "p":
            return "postgres"
        cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        if cur.fetchone():
            cur.execute("SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = %s", [TABLE])
            if cur.fetchone():
                return "timescale"
    raise StoreError(f"{TABLE} is neither a hypertable nor a partitioned table; see `manage.py telemetry_store`")


def timescale_edition(connection) -> str:
    """'community' or 'apache' for the loaded library (a hypertable's features depend on it)."""
    with connection.cursor() as cur:
        cur.execute("SELECT current_setting('timescaledb.license', true)")
        license_ = cur.fetchone()[0]
    return "apache" if license_ == "apache" else "community"


# Per connection (alias and server): the shape of an existing table does not change under a
# running process, except by the migration or the conversion command, which forget it.
_shapes: dict[tuple, tuple[str, str]] = {}


def _key(connection) -> tuple:
    s = connection.settings_dict
    return (connection.alias, s.get("HOST"), s.get("PORT"), s.get("NAME"))


def store_info(connection) -> tuple[str, str]:
    """(shape, edition) of this connection's store, cached once the table exists; for a
    database without the table yet, what ``create_schema`` would make of it (not cached)."""
    key = _key(connection)
    found = _shapes.get(key)
    if found is not None:
        return found
    shape = shape_of_table(connection)
    if shape is None:
        if connection.vendor == "sqlite":
            return "sqlite", ""
        choice = choose_store(settings.TELEMETRY_STORE, probe(connection))
        return choice.store, choice.edition
    info = (shape, timescale_edition(connection) if shape == "timescale" else "")
    _shapes[key] = info
    return info


_aggregates: dict[tuple, bool] = {}


def has_aggregate(connection) -> bool:
    """Whether the minute aggregate exists (TimescaleDB), cached like the shape."""
    key = _key(connection)
    if key not in _aggregates:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE view_name = %s", [f"{TABLE}_1m"]
            )
            _aggregates[key] = cur.fetchone() is not None
    return _aggregates[key]


def forget(connection=None) -> None:
    """Drop the cached shape (after a migration or a conversion)."""
    if connection is None:
        _shapes.clear()
        _aggregates.clear()
    else:
        _shapes.pop(_key(connection), None)
        _aggregates.pop(_key(connection), None)
