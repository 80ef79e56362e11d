"""Thin views for the dashboards: parse the request, call web.dashboards, render.

Alerts and rules live in web/alert_views.py.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.defaults import page_not_found

from twins.models import Asset
from twins.twin_presenters import fleet_twins, twin_panel
from web import dashboards, health, metrics
from web.heartbeats import heartbeat_rows
from web.live_messages import LIVE_PATH
from web.roles import (
    ADMIN,
    FACILITY_MANAGER,
    PLANNER,
    has_role,
    require_role,
    visible_sites,
)

log = logging.getLogger(__name__)
DASHBOARD_ROLES = (FACILITY_MANAGER, PLANNER, ADMIN)


@login_not_required
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Alive: the process answers requests (touches no dependency)."""
    return JsonResponse({"ok": True})


@login_not_required
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready: database (migrations applied), Redis and the broker reachable; 503 naming what is not."""
    ready, checks = health.readiness()
    if not ready:
        log.warning("not ready: %s", {k: v for k, v in checks.items() if v.startswith("failed")})
    return JsonResponse({"ok": ready, "checks": checks}, status=200 if ready else 503)


@login_not_required
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition of this web process (plus the fleet gauges from the database)."""
    if not metrics.may_scrape(request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_AUTHORIZATION", ""), settings.METRICS_TOKEN):
        response = HttpResponse("metrics need Authorization: Bearer <METRICS_TOKEN> (or a request from this host when no token is set)\n",
                                status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="aiot-metrics"'
        return response
    metrics.register_fleet_collector()
    return HttpResponse(metrics.exposition(), content_type=metrics.CONTENT_TYPE_LATEST)


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    reason = str(exception) if exception and str(exception) else "Your role does not allow this page."
    return render(request, "403.html", {"reason": reason}, status=403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """A 404 as its client reads it: JSON under /api/ (what an API client parses), the page otherwise."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "Not found: no such API endpoint or object (ids are whole numbers)."}, status=404)
    return page_not_found(request, exception)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form sent with an expired or missing security token (CSRF_FAILURE_VIEW)."""
    message = "This form was sent with an expired security token (the page was open for a long time, or you logged in again elsewhere). Reload the page and send it again."
    return render(request, "403.html", {"reason": message}, status=403)


FAVICON = Path(__file__).resolve().parent.parent / "static" / "favicon.ico"


@login_not_required
def favicon(request: HttpRequest) -> FileResponse:
    """/favicon.ico, which browsers ask for on every page that names no icon (the admin's).
    Every other static file is WhiteNoise's."""
    response = FileResponse(FAVICON.open("rb"), content_type="image/x-icon")
    response["Cache-Control"] = "public, max-age=86400"
    return response


def _live_context() -> dict[str, str]:
    return {"live_path": "/" + LIVE_PATH}


@require_role(*DASHBOARD_ROLES)
def fleet(request: HttpRequest) -> HttpResponse:
    overview = dashboards.fleet_overview(visible_sites(request.user))
    twins = fleet_twins([a["id"] for s in overview["sites"] for a in s["assets"]])
    for site in overview["sites"]:
        for a in site["assets"]:
            a["twin"] = twins.get(a["id"])
    open_alerts = sum(len(a["alerts"]) for s in overview["sites"] for a in s["assets"])
    return render(request, "fleet.html", {"overview": overview, "open_alerts": open_alerts, **_live_context()})


def _visible_asset(request: HttpRequest, asset_id: int) -> Asset:
    return get_object_or_404(Asset.objects.select_related("site", "asset_type", "node"), id=asset_id, site__in=visible_sites(request.user))


@require_role(*DASHBOARD_ROLES)
def asset_detail(request: HttpRequest, asset_id: int) -> HttpResponse:
    asset = _visible_asset(request, asset_id)
    data = dashboards.asset_page_data(asset, request.GET.get("range", dashboards.DEFAULT_RANGE))
    context = {
        "asset": asset, "page": data, "metrics": data["metrics"], "ranges": dashboards.RANGES.values(), "range": data["range"],
        "alerts": dashboards.asset_alerts(asset), "can_ack": has_role(request.user, FACILITY_MANAGER), **_live_context(),
        "twin": twin_panel(asset.id, asset.hours_per_day), "export_query": _export_query(asset.id, data["span_s"]),
    }
    return render(request, "asset.html", context)


def _export_query(asset_id: int, span_s: float) -> str:
    """The API exports' query for what the page shows: this asset, the selected range up to now."""
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    return urlencode({"asset": asset_id, "start": (end - timedelta(seconds=span_s)).isoformat(), "end": end.isoformat()})


@require_role(*DASHBOARD_ROLES)
def asset_delta(request: HttpRequest, asset_id: int) -> JsonResponse:
    """Readings after ?since=<epoch s>: the catch-up a page fetches once its socket is open."""
    asset = _visible_asset(request, asset_id)
    try:
        since = datetime.fromtimestamp(float(request.GET["since"]), UTC)
    except (KeyError, ValueError, OverflowError, OSError):
        return HttpResponseBadRequest("since=<epoch seconds> is required")
    return JsonResponse(dashboards.asset_delta(asset, since))


@require_role(*DASHBOARD_ROLES)
def nodes(request: HttpRequest) -> HttpResponse:
    sites = visible_sites(request.user)
    # Platform processes (ingest, Celery, beat, listener) from their heartbeats: admins only.
    processes = heartbeat_rows() if has_role(request.user, ADMIN) else None
    return render(request, "nodes.html", {"nodes": dashboards.node_rows(sites), "site_ids": list(sites.values_list("id", flat=True)),
                                          "processes": processes, **_live_context()})
