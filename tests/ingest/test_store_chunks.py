"""A batch bigger than the database's parameter limit is stored whole, not taken for an outage:
40,000 distinct (asset, metric) latest values and 2,000 messages in one batch (SQLite allows
32,766 bound values in one statement, PostgreSQL 65,535)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge_node.agent import contract
from ingest.models import LatestValue, ReceivedMessage
from ingest.payloads import ParsedMessage
from ingest.store import Incoming, store_batch
from tests.factories import make_asset_type, make_node, make_site
from twins.models import Asset

ASSETS, METRICS_PER_TYPE, MESSAGES = 4000, 10, 2000


def test_it_stores_a_batch_past_every_parameter_limit(db):
    metrics = [(f"m{i}", "", -1e9, 1e9) for i in range(METRICS_PER_TYPE)]
    site, asset_type = make_site(), make_asset_type(metrics)
    node = make_node(site)
    Asset.objects.bulk_create([Asset(key=f"chunk-{i}", name=f"Chunk {i}", site=site, asset_type=asset_type, node=node) for i in range(ASSETS)])
    asset_ids = list(Asset.objects.filter(site=site).values_list("id", flat=True))
    metric_ids = list(asset_type.metrics.values_list("id", flat=True))
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    items = []
    per_message = ASSETS // MESSAGES
    for m in range(MESSAGES):
        p = ParsedMessage(topic=contract.topic(node.node_id, "telemetry"), node_key=node.node_id, channel="telemetry", seq=m + 1)
        p.rows = [(t0, a, k, float(m)) for a in asset_ids[m * per_message : (m + 1) * per_message] for k in metric_ids]
        items.append(Incoming(p, f"message {m}".encode()))
    result = store_batch(items, datetime.now(UTC), watched_metrics=frozenset(metric_ids[:1]))
    assert result.stored_rows == ASSETS * METRICS_PER_TYPE
    assert LatestValue.objects.filter(asset__site=site).count() == ASSETS * METRICS_PER_TYPE
    assert ReceivedMessage.objects.filter(node_key=node.node_id).count() == MESSAGES
    assert ReceivedMessage.objects.filter(node_key=node.node_id, alert_rows__isnull=False).count() == MESSAGES
    assert store_batch(items, datetime.now(UTC)).duplicates == MESSAGES  # the dedupe lookup is chunked too
