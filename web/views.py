"""Thin views: parse the request, call the query functions, render."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render

from ingest import timeseries
from twins.models import Alert, Asset
from web.roles import visible_sites


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    return JsonResponse({"ok": True})


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    reason = str(exception) if exception and str(exception) else "Your role does not allow this page."
    return render(request, "403.html", {"reason": reason}, status=403)


def fleet(request: HttpRequest) -> HttpResponse:
    sites = list(visible_sites(request.user).prefetch_related("assets__asset_type", "nodes"))
    asset_ids = [a.id for s in sites for a in s.assets.all()]
    latest = timeseries.latest_values(asset_ids)
    open_alerts = Alert.objects.filter(site__in=sites).exclude(state=Alert.State.CLEARED).count()
    return render(request, "fleet.html", {"sites": sites, "latest": latest, "open_alerts": open_alerts})


def asset_detail(request: HttpRequest, asset_id: int) -> HttpResponse:
    asset = get_object_or_404(Asset.objects.select_related("site", "asset_type", "node"), id=asset_id, site__in=visible_sites(request.user))
    latest = timeseries.latest_values([asset.id]).get(asset.id, {})
    end = datetime.now(UTC)
    start = end - timedelta(hours=1)
    metrics = []
    for metric in asset.asset_type.metrics.all():
        value = latest.get(metric.key)
        buckets = timeseries.bucketed(asset.id, metric.id, start, end + timedelta(seconds=1), timedelta(minutes=1))
        metrics.append({"metric": metric, "value": value[0] if value else None, "ts": value[1] if value else None, "points": len(buckets)})
    return render(request, "asset.html", {"asset": asset, "metrics": metrics, "alerts": asset.alerts.all()[:20]})
