"""What the dashboard pages show, as plain functions the views and tests call.

Everything here returns plain dicts and lists ready for ``json_script``: the pages render
the first picture server-side and their JS modules keep it live.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet

from ingest import timeseries
from twins.alerting import ACTIVE_STATES, alerts_for_display, serialize_alert
from twins.models import Alert, AlertRule, Asset

STALE_AFTER_S = 120  # an asset not heard from for this long shows as stale
DELTA_BUCKET = timedelta(seconds=1)
DELTA_MAX_SPAN = timedelta(hours=1)


@dataclass(frozen=True)
class TimeRange:
    key: str
    label: str
    span: timedelta
    bucket: timedelta


RANGES = {
    r.key: r
    for r in (
        TimeRange("15m", "15 min", timedelta(minutes=15), timedelta(seconds=5)),
        TimeRange("1h", "1 h", timedelta(hours=1), timedelta(seconds=15)),
        TimeRange("24h", "24 h", timedelta(hours=24), timedelta(minutes=5)),
        TimeRange("7d", "7 d", timedelta(days=7), timedelta(minutes=30)),
    )
}
DEFAULT_RANGE = "1h"


def asset_health(last_seen: datetime | None, worst_alert: str | None, now: datetime) -> str:
    """'critical', 'warning', 'stale', 'nodata' or 'ok': the colour of an asset's tile."""
    if worst_alert in (Alert.Severity.CRITICAL, Alert.Severity.WARNING):
        return worst_alert
    if last_seen is None:
        return "nodata"
    if (now - last_seen).total_seconds() > STALE_AFTER_S:
        return "stale"
    return "ok"


def active_alerts(sites) -> QuerySet[Alert]:
    return Alert.objects.filter(site__in=sites, state__in=ACTIVE_STATES)


def fleet_overview(sites, now: datetime | None = None) -> dict[str, Any]:
    """Sites with their assets (health, last seen, active alerts) and edge nodes."""
    now = now or datetime.now(UTC)
    sites = list(sites.prefetch_related("assets__asset_type", "nodes"))
    alerts: dict[int, dict[str, str]] = {}
    for alert_id, asset_id, severity in active_alerts(sites).values_list("id", "asset_id", "severity"):
        if asset_id is not None:
            alerts.setdefault(asset_id, {})[str(alert_id)] = severity
    out = []
    for site in sites:
        assets = []
        for asset in site.assets.all():
            mine = alerts.get(asset.id, {})
            worst = "critical" if "critical" in mine.values() else ("warning" if "warning" in mine.values() else None)
            assets.append({
                "id": asset.id, "name": asset.name, "type": asset.asset_type.name,
                "last_seen": asset.last_seen.timestamp() if asset.last_seen else None,
                "health": asset_health(asset.last_seen, worst, now), "alerts": mine,
            })
        nodes = [{"node": n.node_id, "online": n.online and n.revoked_at is None, "last_seen": n.last_seen.timestamp() if n.last_seen else None} for n in site.nodes.all()]
        out.append({"id": site.id, "name": site.name, "location": site.location, "assets": assets, "nodes": nodes})
    return {"sites": out, "now": now.timestamp(), "stale_after_s": STALE_AFTER_S}


def metric_rules(asset: Asset) -> dict[str, dict[str, float | None]]:
    """{metric key: thresholds} of the asset type's enabled rules, for the chart's guide lines."""
    rules = AlertRule.objects.filter(metric__asset_type_id=asset.asset_type_id, enabled=True).select_related("metric")
    return {
        r.metric.key: {"warning_above": r.warning_above, "critical_above": r.critical_above, "warning_below": r.warning_below, "critical_below": r.critical_below}
        for r in rules
    }


def asset_series(asset: Asset, start: datetime, end: datetime, bucket: timedelta) -> dict[str, list[list[float]]]:
    """{metric key: [[epoch s, avg], ...]} of the asset's metrics, bucketed, in [start, end): one
    query for every chart of the page."""
    metrics = {m.id: m.key for m in asset.asset_type.metrics.all()}
    rows = timeseries.bucketed_many(asset.id, list(metrics), start, end, bucket)
    return {key: [[t, v] for t, v in rows[mid]] for mid, key in metrics.items()}


def asset_page_data(asset: Asset, range_key: str, now: datetime | None = None) -> dict[str, Any]:
    """History up to ``now`` (the page's 'until'), latest values and metric metadata."""
    now = now or datetime.now(UTC)
    rng = RANGES.get(range_key, RANGES[DEFAULT_RANGE])
    latest = timeseries.latest_values([asset.id]).get(asset.id, {})
    metrics = [
        {"key": m.key, "label": m.label or m.key, "unit": m.unit, "min": m.min_value, "max": m.max_value,
         "value": latest[m.key][0] if m.key in latest else None, "ts": latest[m.key][1].timestamp() if m.key in latest else None}
        for m in asset.asset_type.metrics.all()
    ]
    return {
        "asset": asset.id, "site": asset.site_id, "range": rng.key, "span_s": rng.span.total_seconds(), "bucket_s": rng.bucket.total_seconds(),
        "until": now.timestamp(),
        "metrics": metrics, "series": asset_series(asset, now - rng.span, now, rng.bucket), "rules": metric_rules(asset),
    }


def asset_delta(asset: Asset, since: datetime, now: datetime | None = None) -> dict[str, Any]:
    """Readings after ``since`` (one-second buckets, at most DELTA_MAX_SPAN back): fills the gap
    between a page's history and the first live update its socket delivers."""
    now = now or datetime.now(UTC)
    since = max(since, now - DELTA_MAX_SPAN)
    return {"asset": asset.id, "until": now.timestamp(), "series": asset_series(asset, since, now + DELTA_BUCKET, DELTA_BUCKET)}


def asset_alerts(asset: Asset, limit: int = 20) -> list[dict[str, Any]]:
    return [serialize_alert(a) for a in alerts_for_display().filter(asset=asset)[:limit]]


@dataclass(frozen=True)
class AlertFilters:
    site: int | None = None
    asset: int | None = None
    severity: str | None = None
    # 'recent' (active, or cleared within RECENT_CLEARED), 'active' (open or acknowledged),
    # 'open', 'acknowledged', 'cleared', 'all'
    state: str = "recent"


ALERT_STATE_FILTERS = ("recent", "active", "open", "acknowledged", "cleared", "all")
RECENT_CLEARED = timedelta(hours=24)


def filter_alerts(sites, filters: AlertFilters, limit: int = 200) -> list[Alert]:
    qs = alerts_for_display().filter(site__in=sites)
    if filters.site is not None:
        qs = qs.filter(site_id=filters.site)
    if filters.asset is not None:
        qs = qs.filter(asset_id=filters.asset)
    if filters.severity:
        qs = qs.filter(severity=filters.severity)
    if filters.state == "recent":
        qs = qs.filter(Q(state__in=ACTIVE_STATES) | Q(cleared_at__gte=datetime.now(UTC) - RECENT_CLEARED))
    elif filters.state == "active":
        qs = qs.filter(state__in=ACTIVE_STATES)
    elif filters.state != "all":
        qs = qs.filter(state=filters.state)
    return list(qs[:limit])


def node_rows(sites) -> list[dict[str, Any]]:
    """Edge nodes of these sites with their retained status heartbeat."""
    from edge_node.models import EdgeNode

    rows = []
    for n in EdgeNode.objects.filter(site__in=sites).select_related("site"):
        rows.append({
            "node": n.node_id, "name": n.name, "site": n.site_id, "site_name": n.site.name,
            "online": n.online and n.revoked_at is None, "revoked": n.revoked_at is not None,
            "last_seen": n.last_seen.timestamp() if n.last_seen else None, "status": n.status or {},
        })
    return rows
