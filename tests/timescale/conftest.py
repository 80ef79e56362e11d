"""A real TimescaleDB build for the telemetry store's tests (``timescale`` marker).

PGlite (PostgreSQL 17.5 in WebAssembly) with TimescaleDB 2.23.0-dev, pinned in
``harness/package-lock.json`` and served over the wire protocol by ``harness/server.mjs``
(``make test`` installs it with npm when npm is there). It is a test harness, not a production
engine: one connection at a time, no COPY FROM STDIN (writes use ``TELEMETRY_COPY=0``),
background jobs not relied on. Without node or the harness these tests skip, and fail under
AIOT_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import pytest

from tests.conftest import _missing
from tests.services import TimescaleHarness

ALIAS = "timescale"


@pytest.fixture(scope="module")
def harness_port():
    why = TimescaleHarness.missing()
    if why:
        _missing(why)
    harness = TimescaleHarness()
    harness.start()
    try:
        yield harness.port
    finally:
        harness.stop()


@pytest.fixture(scope="module")
def ts(harness_port, django_db_blocker):
    """The Django connection (alias ``timescale``) to the harness; the telemetry table dropped
    before each module."""
    from django.db import connections

    from ingest.timeseries import store

    config = {
        "ENGINE": "django.db.backends.postgresql", "NAME": "postgres", "USER": "postgres", "PASSWORD": "postgres",
        "HOST": "127.0.0.1", "PORT": str(harness_port), "OPTIONS": {"sslmode": "disable"},
    }
    both = connections.configure_settings({"default": dict(connections.settings["default"]), ALIAS: config})
    connections.settings[ALIAS] = both[ALIAS]
    with django_db_blocker.unblock():
        conn = connections[ALIAS]
        try:
            yield conn
        finally:
            conn.close()
            store.forget()
            del connections[ALIAS]
            del connections.settings[ALIAS]


@pytest.fixture
def no_copy(settings):
    settings.TELEMETRY_COPY = False  # COPY FROM STDIN crashes the harness (a PGlite limit)
