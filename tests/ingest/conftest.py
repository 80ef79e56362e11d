from __future__ import annotations

import threading
import uuid

import paho.mqtt.client as mqtt
import pytest

from tests.helpers import wait_until


@pytest.fixture
def ingest_worker(transactional_db, mqtt_url, settings):
    """The real ingest worker on its own thread, connected to the real broker."""
    from ingest.worker import IngestWorker

    settings.INGEST_SESSION_EXPIRY_S = 60
    worker = IngestWorker(broker_url=mqtt_url, client_id=f"test-ingest-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5, live=False)
    def run() -> None:
        from django.db import connection

        try:
            worker.run()
        finally:
            connection.close()  # this thread's own connection: else the test database cannot be dropped

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_until(worker.connected.is_set, 10, what="the ingest worker to connect")
    wait_until(lambda: worker.registry is not None, 10, what="the registry to load")
    yield worker
    worker.stop()
    thread.join(10)
