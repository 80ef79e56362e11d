"""Simulated edge agents -> real broker -> the real ingest worker -> database.

The agents reach the broker through a proxy the test can cut: the broker is out of reach for
AIOT_TEST_BROKER_OUTAGE_S seconds (30 by default) while the agents keep producing; afterwards
every reading is in the database and every node's seq is contiguous.
"""

from __future__ import annotations

import os
import time
from urllib.parse import urlsplit

import pytest

from edge_node.agent.fleet import AssetSpec, Fleet, NodeSpec
from ingest import timeseries
from ingest.models import EdgeEvent, NodeStream
from tests.factories import make_asset, make_node, make_site
from tests.helpers import TcpProxy, wait_until

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

OUTAGE_S = float(os.environ.get("AIOT_TEST_BROKER_OUTAGE_S", "30"))


@pytest.fixture
def demo_types(transactional_db):
    from web.demo import sync_asset_types

    return sync_asset_types()


def make_nodes(demo_types, n_nodes: int = 2) -> list[NodeSpec]:
    site = make_site()
    specs = []
    for _ in range(n_nodes):
        node = make_node(site)
        assets = [make_asset(site, demo_types[t], node) for t in ("induction_motor", "centrifugal_pump", "hvac_unit")]
        specs.append(NodeSpec(node.node_id, assets=[AssetSpec(a.key, a.asset_type.key, seed=a.pk) for a in assets]))
    return specs


def test_it_stores_every_reading_after_a_broker_outage_with_contiguous_seq(ingest_worker, mqtt_url, demo_types, tmp_path):
    specs = make_nodes(demo_types)
    broker = urlsplit(mqtt_url)
    proxy = TcpProxy(broker.port or 1883)
    fleet = Fleet(specs, f"mqtt://127.0.0.1:{proxy.port}", tmp_path / "fleet", publish_interval_s=0.2, heartbeat_interval_s=2.0)
    fleet.start()
    try:
        node_ids = [s.node_id for s in specs]
        wait_until(lambda: NodeStream.objects.filter(node_key__in=node_ids, messages__gte=3).count() == len(specs), 20, what="the first batches of every node")
        proxy.cut()
        time.sleep(OUTAGE_S)
        buffered = sum(n.buffer_depth for n in fleet.report().nodes)
        assert buffered > 0, "the agents buffered nothing during the outage; the test proves nothing"
        proxy.restore()
        time.sleep(2.0)
    finally:
        report = fleet.stop()
        proxy.close()
    sent = {n.node_id: n for n in report.nodes}

    def all_stored() -> bool:
        streams = {s.node_key: s for s in NodeStream.objects.filter(node_key__in=sent)}
        return len(streams) == len(sent) and all(streams[k].messages >= sent[k].batches for k in sent)

    wait_until(all_stored, 60, what="every batch the agents sent")
    for stream in NodeStream.objects.filter(node_key__in=sent):
        node = sent[stream.node_key]
        assert node.buffer_depth == 0 and node.dropped == 0
        assert stream.messages == node.batches
        assert stream.missing == 0, f"{stream.node_key}: seq {stream.first_seq}..{stream.max_seq} has gaps"
        assert stream.rejected == 0
    asset_ids = [a for s in specs for a in s.assets]
    stored_values = sum(timeseries.count_rows(_asset_pk(a.asset_id)) for a in asset_ids)
    assert stored_values == sum(s.readings for s in NodeStream.objects.filter(node_key__in=sent)) > 0


def _asset_pk(key: str) -> int:
    from twins.models import Asset

    return Asset.objects.get(key=key).pk


def test_it_stores_an_injected_fault_event_within_a_second(ingest_worker, mqtt_url, demo_types, tmp_path):
    from edge_node.agent.train_anomaly import train_anomaly_model

    models = tmp_path / "models"
    train_anomaly_model("induction_motor", models, n_windows=800, n_estimators=50)
    [spec] = make_nodes(demo_types, 1)
    motor = spec.assets[0]
    fleet = Fleet([spec], mqtt_url, tmp_path / "fleet", publish_interval_s=0.1, models_dir=models)
    fleet.start()
    try:
        wait_until(lambda: NodeStream.objects.filter(node_key=spec.node_id, messages__gte=5).exists(), 20, what="the node's first batches")
        # the streaming detector learns the healthy baseline first
        wait_until(lambda: fleet.report().nodes[0].samples > 90, 20, what="the detectors to warm up")
        assert not EdgeEvent.objects.filter(node_key=spec.node_id, kind="anomaly").exists()
        injected = time.monotonic()
        fleet.inject_fault(spec.node_id, motor.asset_id, "bearing_impact", duration_s=5.0, magnitude=3.0)
        wait_until(lambda: EdgeEvent.objects.filter(node_key=spec.node_id, kind="anomaly").exists(), 5, interval=0.02, what="the anomaly event")
        elapsed = time.monotonic() - injected
    finally:
        fleet.stop()
    event = EdgeEvent.objects.filter(node_key=spec.node_id, kind="anomaly").first()
    assert event.asset.key == motor.asset_id and event.severity in ("warning", "critical")
    assert elapsed <= 1.0, f"the fault's event was stored {elapsed:.2f} s after the injection"
