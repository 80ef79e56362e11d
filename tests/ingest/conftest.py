from __future__ import annotations

import pytest

from tests.helpers import ingest_worker_running


@pytest.fixture
def ingest_worker(transactional_db, mqtt_url, settings):
    """The real ingest worker on its own thread, connected to the real broker."""
    settings.INGEST_SESSION_EXPIRY_S = 60
    with ingest_worker_running(mqtt_url, "ingest") as worker:
        yield worker
