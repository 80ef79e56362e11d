"""Liveness and readiness of the web process, for load balancers and orchestrators.

``/healthz``: the process answers (no dependency is touched: a database outage must not get
every web process restarted). ``/readyz``: the database answers and has every migration
applied, Redis answers (when configured), the MQTT broker accepts a TCP connection; 503 with
the failing check named otherwise.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

CHECK_TIMEOUT_S = 2.0
_migrations_ok_at: list[float] = []  # the plan is costly to compute: once applied, re-checked every minute
MIGRATIONS_RECHECK_S = 60.0


def check_database() -> str:
    with connections[DEFAULT_DB_ALIAS].cursor() as cur:
        cur.execute("SELECT 1")
    return "ok"


def check_migrations() -> str:
    if _migrations_ok_at and time.monotonic() - _migrations_ok_at[0] < MIGRATIONS_RECHECK_S:
        return "ok"
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise RuntimeError(f"{len(plan)} migrations not applied (first: {plan[0][0].app_label}.{plan[0][0].name})")
    _migrations_ok_at[:] = [time.monotonic()]
    return "ok"


def check_redis() -> str:
    if not settings.REDIS_URL:
        return "not configured (embedded)"
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=CHECK_TIMEOUT_S)
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


def check_broker() -> str:
    parts = urlsplit(settings.MQTT_URL)
    port = parts.port or (8883 if parts.scheme in ("mqtts", "ssl") else 1883)
    with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=CHECK_TIMEOUT_S):
        return "ok"


CHECKS: dict[str, Callable[[], str]] = {"database": check_database, "migrations": check_migrations, "redis": check_redis, "broker": check_broker}


def readiness() -> tuple[bool, dict[str, str]]:
    """Every check's outcome; ready when none raised."""
    results: dict[str, str] = {}
    ready = True
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception as exc:  # noqa: BLE001 - each failure is reported by name, not raised
            ready = False
            results[name] = f"failed: {exc.__class__.__name__}: {exc}"[:300]
    return ready, results
