"""Twin pages: the RUL models with their validation figures, and an asset's twin history (JSON)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render

from twins.models import Asset
from twins.twin_presenters import model_rows, twin_panel
from web.roles import ADMIN, FACILITY_MANAGER, PLANNER, require_role, visible_sites

DASHBOARD_ROLES = (FACILITY_MANAGER, PLANNER, ADMIN)


@require_role(*DASHBOARD_ROLES)
def models(request: HttpRequest) -> HttpResponse:
    return render(request, "twins/models.html", {"models": model_rows()})


@require_role(*DASHBOARD_ROLES)
def twin_history(request: HttpRequest, asset_id: int) -> JsonResponse:
    """The twin's current figures, model evidence and snapshot history of one visible asset."""
    asset = get_object_or_404(Asset, id=asset_id, site__in=visible_sites(request.user))
    return JsonResponse({"asset": asset.id, "twin": twin_panel(asset.id, asset.hours_per_day)})
