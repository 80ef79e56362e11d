"""The real stack for browser tests: daphne (subprocess) and the ingest worker (thread) share
a Redis channel layer; Mosquitto carries the readings; headless Chromium drives the pages."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import ROOT, database_url_for_subprocess, free_port, ingest_worker_running, wait_until
from web.env import channel_layers_from_url

CHANNEL_PREFIX = f"aiot-test-{uuid.uuid4().hex[:8]}"
# What-if runs started through these web processes go to a queue of this test run's own.
SCENARIO_QUEUE = f"scenarios-{CHANNEL_PREFIX}"


@contextmanager
def daphne_serving(redis_url: str) -> Iterator[str]:
    """One daphne process serving web.asgi on a free port, against the test database and Redis
    (this run's channel-layer prefix and scenario queue); its base URL once /healthz answers."""
    port = free_port()
    env = dict(
        os.environ, DATABASE_URL=database_url_for_subprocess(), REDIS_URL=redis_url, ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SETTINGS_MODULE="tests.browser.live_settings", AIOT_TEST_CHANNEL_PREFIX=CHANNEL_PREFIX, SCENARIO_QUEUE=SCENARIO_QUEUE,
        PYTHONUNBUFFERED="1",
    )
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"aiot-browser-daphne-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "web.asgi:application"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"daphne exited: {log_path.read_text()[-2000:]}")
        try:
            return urllib.request.urlopen(f"{base}/healthz", timeout=1).status == 200
        except OSError:
            return False

    try:
        wait_until(up, 30, 0.2, what="daphne to serve /healthz")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="session")
def web_server(django_db_setup, redis_url):
    """daphne serving web.asgi on a free port, against the test database and Redis."""
    with daphne_serving(redis_url) as base:
        yield base


@pytest.fixture(scope="session")
def second_web_server(django_db_setup, redis_url):
    """A second daphne process beside ``web_server`` (another host behind the proxy)."""
    with daphne_serving(redis_url) as base:
        yield base


@pytest.fixture
def live_ingest(transactional_db, mqtt_url, redis_url, settings):
    """The real ingest worker on a thread, sending live updates to the same channel layer."""
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = channel_layers_from_url(redis_url, settings.CHANNEL_LAYER_KIND, CHANNEL_PREFIX)
    settings.INGEST_SESSION_EXPIRY_S = 60
    channel_layers.backends.clear()
    try:
        with ingest_worker_running(mqtt_url, "live", live=True) as worker:
            yield worker
    finally:
        channel_layers.backends.clear()


@pytest.fixture
def page(chromium, web_server):
    context = chromium.new_context(base_url=web_server, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10000)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs
    yield page
    context.close()


def log_in(page, user, base: str = "") -> None:
    """Log ``user`` in through the login form (``base``: the server's URL for a page opened
    without one)."""
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "pw-" + user.username)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)


@pytest.fixture(autouse=True)
def _role_groups(transactional_db):
    # Transactional tests empty every table afterwards, the role groups of the data migration too.
    from django.contrib.auth.models import Group

    from web.roles import ROLES

    for role in ROLES:
        Group.objects.get_or_create(name=role)
