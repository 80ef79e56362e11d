"""Load what the validator needs from the database: nodes, assets and their metrics."""

from __future__ import annotations

from ingest.payloads import AssetInfo, MetricInfo, NodeInfo, Registry


def load_registry() -> tuple[Registry, dict[int, str], dict[int, int]]:
    """(registry, metric_id -> metric key, asset_id -> site_id) in three queries."""
    from edge_node.models import EdgeNode
    from twins.models import Asset, Metric

    metrics_by_type: dict[int, dict[str, MetricInfo]] = {}
    metric_keys: dict[int, str] = {}
    for m in Metric.objects.values_list("id", "asset_type_id", "key", "min_value", "max_value"):
        mid, type_id, key, lo, hi = m
        metrics_by_type.setdefault(type_id, {})[key] = MetricInfo(mid, lo, hi)
        metric_keys[mid] = key
    nodes = {
        node_id: NodeInfo(pk, site_id, revoked_at is not None)
        for pk, node_id, site_id, revoked_at in EdgeNode.objects.values_list("id", "node_id", "site_id", "revoked_at")
    }
    assets: dict[str, AssetInfo] = {}
    asset_sites: dict[int, int] = {}
    for pk, key, site_id, type_id, node_key in Asset.objects.values_list("id", "key", "site_id", "asset_type_id", "node__node_id"):
        assets[key] = AssetInfo(pk, site_id, node_key, metrics_by_type.get(type_id, {}))
        asset_sites[pk] = site_id
    return Registry(nodes=nodes, assets=assets), metric_keys, asset_sites
