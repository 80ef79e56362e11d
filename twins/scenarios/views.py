"""Thin views: the scenario list, the new-scenario form, a run's page (progress, results,
comparison), cancel, run again, and the CSV download. Planners and admins only; a planner
sees the scenarios of the sites they may see, nothing else (404)."""

from __future__ import annotations

import csv

from django.contrib import messages
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from twins.scenarios import const
from twins.scenarios.forms import ScenarioForm, field_groups
from twins.scenarios.models import Scenario, ScenarioRun
from twins.scenarios.presenters import csv_rows, run_page_data
from twins.scenarios.progress import snapshot
from twins.scenarios.services import (
    ScenarioServiceError,
    cancel_run,
    create_scenario,
    start_run,
)
from twins.sim import ScenarioError
from web.roles import ADMIN, PLANNER, require_role, visible_sites

PLANNING_ROLES = (PLANNER, ADMIN)
MAX_COMPARED = 5


def _visible_runs(request: HttpRequest):
    return ScenarioRun.objects.filter(scenario__site__in=visible_sites(request.user))


@require_role(*PLANNING_ROLES)
def scenario_list(request: HttpRequest) -> HttpResponse:
    latest = ScenarioRun.objects.filter(scenario=OuterRef("pk")).order_by("-created_at")
    scenarios = (
        Scenario.objects.filter(site__in=visible_sites(request.user)).select_related("site", "created_by")
        .annotate(latest_run=Subquery(latest.values("id")[:1]), latest_state=Subquery(latest.values("state")[:1]))[:200]
    )
    return render(request, "scenarios/list.html", {"scenarios": scenarios})


@require_role(*PLANNING_ROLES)
def scenario_new(request: HttpRequest) -> HttpResponse:
    initial = {}
    if "asset" in request.GET:
        initial["assets"] = request.GET.getlist("asset")
    if "site" in request.GET:
        initial["site"] = request.GET.get("site")
    form = ScenarioForm(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        scenario = create_scenario(request.user, name=data["name"], site=form.chosen_site, assets=form.chosen_assets,
                                   params=form.params, compare_baseline=data["compare_baseline"])
        try:
            run = start_run(scenario.id, request.user)
        except ScenarioError as exc:  # a twin changed between the form's check and the start
            messages.error(request, f"The scenario could not start: {exc}")
            return redirect("scenarios:list")
        return redirect("scenarios:run", run_id=run.id)
    return render(request, "scenarios/new.html", {"form": form, "groups": field_groups(form)})


@require_role(*PLANNING_ROLES)
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(_visible_runs(request).select_related("scenario__site", "created_by"), id=run_id)
    site_runs = (
        _visible_runs(request).filter(scenario__site=run.scenario.site, state=ScenarioRun.State.DONE).exclude(id=run.id)
        .select_related("scenario").defer("results", "comparison", "specs")[:50]
    )
    wanted = [int(v) for v in request.GET.getlist("with") if v.isdigit()][:MAX_COMPARED]
    others = list(_visible_runs(request).filter(id__in=wanted, state=ScenarioRun.State.DONE).exclude(id=run.id)) if wanted else []
    results = run.results or {}
    context = {
        "run": run, "scenario": run.scenario, "page": run_page_data(run, others), "site_runs": site_runs,
        "compared_ids": [o.id for o in others], "assumptions": (results.get(const.VARIANT_SCENARIO) or {}).get("assumptions", []),
        "asset_assumptions": [(a["name"], a["assumptions"]) for a in (results.get(const.VARIANT_SCENARIO) or {}).get("assets", [])],
    }
    return render(request, "scenarios/run.html", context)


@require_role(*PLANNING_ROLES)
def run_status(request: HttpRequest, run_id: int) -> JsonResponse:
    """The run's progress as JSON: what the page polls while its socket is down."""
    if not _visible_runs(request).filter(id=run_id).exists():
        raise Http404("no such run")
    return JsonResponse(snapshot(run_id))


@require_POST
@require_role(*PLANNING_ROLES)
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(_visible_runs(request), id=run_id)
    try:
        cancel_run(run.id, request.user)
        messages.success(request, "Run cancelled.")
    except ScenarioServiceError as exc:
        messages.warning(request, str(exc))
    return redirect("scenarios:run", run_id=run.id)


@require_POST
@require_role(*PLANNING_ROLES)
def scenario_rerun(request: HttpRequest, scenario_id: int) -> HttpResponse:
    scenario = get_object_or_404(Scenario.objects.filter(site__in=visible_sites(request.user)), id=scenario_id)
    try:
        run = start_run(scenario.id, request.user)
    except ScenarioError as exc:
        messages.error(request, f"The scenario could not start: {exc}")
        return redirect("scenarios:list")
    return redirect("scenarios:run", run_id=run.id)


@require_role(*PLANNING_ROLES)
def run_csv(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(_visible_runs(request).select_related("scenario"), id=run_id, state=ScenarioRun.State.DONE)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"scenario-{run.id}-{slugify(run.scenario.name)[:60] or 'result'}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    for row in csv_rows(run):
        # A name starting with = + - @ would be a formula in a spreadsheet: quote it as text.
        writer.writerow(["'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v for v in row])
    return response
