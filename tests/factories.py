"""Factories for the core models; each call makes its own uniquely named rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from edge_node.models import EdgeNode
from twins.models import Asset, AssetType, Metric, Site


def _u() -> str:
    return uuid.uuid4().hex[:8]


def make_site(name: str | None = None, members=()) -> Site:
    suffix = _u()
    site = Site.objects.create(key=f"site-{suffix}", name=name or f"Site {suffix}")
    site.members.add(*members)
    return site


def make_asset_type(metrics=(("temperature_c", "°C", -40.0, 150.0), ("vib_rms", "mm/s", 0.0, 100.0))) -> AssetType:
    suffix = _u()
    asset_type = AssetType.objects.create(key=f"type-{suffix}", name=f"Type {suffix}")
    for key, unit, lo, hi in metrics:
        Metric.objects.create(asset_type=asset_type, key=key, label=key, unit=unit, min_value=lo, max_value=hi)
    return asset_type


def make_node(site: Site, node_id: str | None = None) -> EdgeNode:
    return EdgeNode.objects.create(node_id=node_id or f"node-{_u()}", site=site)


def make_asset(site: Site, asset_type: AssetType, node: EdgeNode | None, name: str | None = None) -> Asset:
    suffix = _u()
    return Asset.objects.create(key=f"asset-{suffix}", name=name or f"Asset {suffix}", site=site, asset_type=asset_type, node=node)


@dataclass
class Fleet:
    site: Site
    asset_type: AssetType
    node: EdgeNode
    assets: list[Asset]
    other_node: EdgeNode
    other_asset: Asset
    metrics: dict[str, Metric] = field(default_factory=dict)


def make_fleet(n_assets: int = 3, members=()) -> Fleet:
    """One site, one asset type, a node with ``n_assets`` assets, and a second node with one."""
    site = make_site(members=members)
    asset_type = make_asset_type()
    node = make_node(site)
    assets = [make_asset(site, asset_type, node) for _ in range(n_assets)]
    other = make_node(site)
    other_asset = make_asset(site, asset_type, other)
    return Fleet(site, asset_type, node, assets, other, other_asset, {m.key: m for m in asset_type.metrics.all()})
