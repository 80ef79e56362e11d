"""Shared fixtures: real services, personas, factories.

Tests that need a real service take the fixture for it. Without the service they skip with
the reason, unless AIOT_REQUIRE_SERVICES=1 (set by .ci/run), where they fail instead.
"""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest

REQUIRE = os.environ.get("AIOT_REQUIRE_SERVICES") == "1"


def _missing(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)

@pytest.fixture(scope="module")
def chromium():
    """Headless Debian Chromium for the browser tests (skips, or fails in CI, without it)."""
    from pathlib import Path

    from tests.helpers import CHROMIUM, headless_chromium

    if not Path(CHROMIUM).exists():
        _missing(f"needs Chromium at {CHROMIUM} (set AIOT_CHROMIUM)")
    with headless_chromium() as browser:
        yield browser



def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    """The real broker (Mosquitto) the MQTT contract is tested against."""
    url = os.environ.get("MQTT_TEST_URL", "mqtt://127.0.0.1:1883")
    parts = urlsplit(url)
    if not _reachable(parts.hostname or "127.0.0.1", parts.port or 1883):
        _missing(f"needs an MQTT broker at {url} (set MQTT_TEST_URL)")
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        _missing("needs Redis: set REDIS_URL=redis://127.0.0.1:6379/0")
    parts = urlsplit(url)
    if not _reachable(parts.hostname or "127.0.0.1", parts.port or 6379):
        _missing(f"needs Redis at {url}")
    return url


@pytest.fixture
def postgres(db) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        _missing("needs PostgreSQL: set DATABASE_URL=postgres://postgres@127.0.0.1/test")


@pytest.fixture
def unique() -> str:
    """A short unique id: each test its own node ids, asset keys, topics."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(autouse=True)
def _no_ssl_env(monkeypatch):
    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)


@pytest.fixture(autouse=True)
def _own_throttle_counts(settings):
    """Each test counts failed logins and downloads afresh (the counts live in Redis)."""
    settings.THROTTLE_NAMESPACE = uuid.uuid4().hex[:8]


# --- personas -----------------------------------------------------------------------------


def _user(username: str, role: str | None):
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(username=username, password="pw-" + username)
    if role:
        # transactional tests flush the groups the data migration created: recreate them
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def manager(db):
    return _user("fm", "facility_manager")


@pytest.fixture
def planner(db):
    return _user("planner", "planner")


@pytest.fixture
def admin_user(db):
    return _user("admin1", "admin")


@pytest.fixture
def outsider(db):
    return _user("outsider", None)


@pytest.fixture(scope="session", autouse=True)
def _clear_retained_test_messages():
    """Clear retained aiot/v1 messages on the test broker before and after the run.

    Agents publish their status retained (by design); without this, every earlier run's nodes
    would be replayed to each new ingest subscription as unknown nodes.
    """
    url = os.environ.get("MQTT_TEST_URL", "mqtt://127.0.0.1:1883")
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 1883
    if _reachable(host, port):
        _clear_retained(host, port)
    yield
    if _reachable(host, port):
        _clear_retained(host, port)


def _clear_retained(host: str, port: int, quiet_s: float = 0.5) -> None:
    import time

    import paho.mqtt.client as mqtt

    topics: set[str] = set()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-clear-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.on_message = lambda c, u, m: topics.add(m.topic) if m.retain and m.payload else None
    try:
        client.connect(host, port)
    except OSError:
        return
    client.subscribe("aiot/v1/#", qos=0)
    client.loop_start()
    seen, deadline = -1, time.monotonic() + 5
    while len(topics) != seen and time.monotonic() < deadline:  # retained messages arrive at once
        seen = len(topics)
        time.sleep(quiet_s)
    infos = [client.publish(topic, b"", qos=1, retain=True) for topic in topics]
    for info in infos:
        info.wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
