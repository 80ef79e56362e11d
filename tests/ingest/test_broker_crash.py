"""A broker crash loses no reading: the project's agents, a private Mosquitto with the shipped
settings, the real ingest worker process. kill -9 of the broker while the agents publish and
the worker is connected, and while the worker is stopped (messages queued for it in the
broker's memory): every batch an agent produced is stored once, none twice."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import pytest

from edge_node.agent.fleet import AssetSpec, Fleet, NodeSpec
from ingest.models import NodeStream
from tests.factories import make_asset, make_node, make_site
from tests.helpers import start_ingest_process, wait_until
from tests.services import PrivateMosquitto

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


@pytest.fixture
def broker(tmp_path, mqtt_url):  # mqtt_url: the mosquitto binary is part of the required services
    b = PrivateMosquitto(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def demo_fleet(transactional_db):
    from web.demo import sync_asset_types

    types = sync_asset_types()
    site = make_site()
    specs = []
    for _ in range(3):
        node = make_node(site)
        assets = [make_asset(site, types[t], node) for t in ("induction_motor", "centrifugal_pump", "hvac_unit")]
        specs.append(NodeSpec(node.node_id, assets=[AssetSpec(a.key, a.asset_type.key, seed=a.pk) for a in assets]))
    return specs


class Worker:
    def __init__(self, url: str, client_id: str) -> None:
        self.proc = start_ingest_process(url, client_id)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()
        wait_until(lambda: "connected to" in "".join(self.lines) or self.proc.poll() is not None, 20, what="the worker to connect")
        assert self.proc.poll() is None, "".join(self.lines)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return "".join(self.lines)


def assert_every_batch_stored_once(report, specs) -> None:
    from django.db import connection

    batches = {n.node_id: n.batches for n in report.nodes}
    assert all(n.dropped == 0 for n in report.nodes)

    def stored_all() -> bool:
        streams = dict(NodeStream.objects.filter(node_key__in=batches).values_list("node_key", "messages"))
        return all(streams.get(k, 0) >= v for k, v in batches.items())

    wait_until(stored_all, 60, what="every batch the agents produced")
    time.sleep(0.5)  # a late duplicate would land now
    for stream in NodeStream.objects.filter(node_key__in=batches):
        assert stream.messages == batches[stream.node_key], stream.node_key
        assert stream.missing == 0 and stream.rejected == 0, (stream.node_key, stream.first_seq, stream.max_seq)
    from twins.models import Asset

    ids = list(Asset.objects.filter(key__in=[a.asset_id for s in specs for a in s.assets]).values_list("id", flat=True))
    marks = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM ingest_telemetry WHERE asset_id IN ({marks})", ids)
        total = cur.fetchone()[0]
        cur.execute(f"SELECT COUNT(*) FROM (SELECT DISTINCT time, asset_id, metric_id FROM ingest_telemetry WHERE asset_id IN ({marks})) d", ids)
        distinct = cur.fetchone()[0]
    readings = sum(s.readings for s in NodeStream.objects.filter(node_key__in=batches))
    assert total == distinct == readings > 0, (total, distinct, readings)


def test_a_broker_crash_while_the_worker_is_connected_loses_nothing(broker, demo_fleet, tmp_path, unique):
    worker = Worker(broker.url, f"test-crash-{unique}")
    fleet = Fleet(demo_fleet, broker.url, tmp_path / "fleet", publish_interval_s=0.1, heartbeat_interval_s=2.0,
                  confirm_timeout_s=3.0)
    fleet.start()
    report = None
    try:
        wait_until(lambda: NodeStream.objects.filter(node_key__in=[s.node_id for s in demo_fleet], messages__gte=5).count() == 3,
                   20, what="the stream flowing")
        for _ in range(2):
            broker.kill9()
            time.sleep(1.0)
            broker.start()
            time.sleep(3.0)
        report = fleet.stop()
    finally:
        if report is None:
            fleet.stop()
        log = worker.stop()
    assert "Traceback" not in log, log[-3000:]
    assert sum(n.batches for n in report.nodes) > 100
    assert_every_batch_stored_once(report, demo_fleet)


def test_a_broker_crash_while_the_worker_is_stopped_loses_nothing(broker, demo_fleet, tmp_path, unique):
    client_id = f"test-crash-stopped-{unique}"
    worker = Worker(broker.url, client_id)
    fleet = Fleet(demo_fleet, broker.url, tmp_path / "fleet", publish_interval_s=0.1, heartbeat_interval_s=2.0,
                  confirm_timeout_s=3.0)
    fleet.start()
    report = None
    try:
        wait_until(lambda: NodeStream.objects.filter(node_key__in=[s.node_id for s in demo_fleet], messages__gte=5).count() == 3,
                   20, what="the stream flowing")
        worker.stop()  # its persistent session queues what the agents send meanwhile
        time.sleep(3.0)
        queued = sum(a.outbox.depth for a in fleet.agents.values())
        assert queued > 30, "nothing waited for the stopped worker; the test proves nothing"
        broker.kill9()  # the queued messages were in the broker's memory only
        time.sleep(1.0)
        broker.start()
        time.sleep(1.0)  # the agents reconnect first and re-send: no one is subscribed yet
        worker = Worker(broker.url, client_id)
        time.sleep(5.0)
        report = fleet.stop()
    finally:
        if report is None:
            fleet.stop()
        log = worker.stop()
    assert "Traceback" not in log, log[-3000:]
    assert_every_batch_stored_once(report, demo_fleet)
