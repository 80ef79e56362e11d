"""Thin views for alerts (list, acknowledge) and alert rules (admins only)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from twins.alerting import (
    AlertError,
    acknowledge_alert,
    save_alert_rule,
    serialize_alert,
)
from twins.models import Alert, AlertRule, Asset, CombinedRule
from web.dashboards import filter_alerts
from web.forms import AcknowledgeForm, AlertFilterForm, AlertRuleForm
from web.live_messages import LIVE_PATH
from web.roles import (
    ADMIN,
    FACILITY_MANAGER,
    PLANNER,
    has_role,
    require_role,
    visible_sites,
)


@require_role(FACILITY_MANAGER, PLANNER, ADMIN)
def alerts(request: HttpRequest) -> HttpResponse:
    sites = visible_sites(request.user)
    assets = Asset.objects.filter(site__in=sites).select_related("site").order_by("site__name", "name")
    form = AlertFilterForm(request.GET or None, sites=sites, assets=assets)
    filters = form.filters()
    rows = filter_alerts(sites, filters)
    context = {
        "form": form, "alerts": rows, "alert_data": [serialize_alert(a) for a in rows],
        "filters": {"site": filters.site, "asset": filters.asset, "severity": filters.severity, "state": filters.state},
        "site_ids": list(sites.values_list("id", flat=True)), "can_ack": has_role(request.user, FACILITY_MANAGER),
        "ack_form": AcknowledgeForm(), "live_path": "/" + LIVE_PATH,
    }
    return render(request, "alerts.html", context)


@require_POST
@require_role(FACILITY_MANAGER)
def acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    get_object_or_404(Alert, id=alert_id, site__in=visible_sites(request.user))
    form = AcknowledgeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The comment is too long.")
    else:
        try:
            acknowledge_alert(alert_id, request.user, form.cleaned_data["comment"])
            messages.success(request, "Alert acknowledged.")
        except AlertError as exc:
            messages.warning(request, str(exc))
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = "/alerts/"
    return redirect(back)


@require_role(ADMIN)
def rules(request: HttpRequest) -> HttpResponse:
    combined = CombinedRule.objects.select_related("asset_type").prefetch_related("conditions__metric")
    return render(request, "rules.html", {"rules": AlertRule.objects.select_related("metric__asset_type"), "combined_rules": combined})


@require_role(ADMIN)
def rule_edit(request: HttpRequest, rule_id: int | None = None) -> HttpResponse:
    rule = get_object_or_404(AlertRule, id=rule_id) if rule_id is not None else None
    form = AlertRuleForm(request.POST or None, instance=rule)
    if request.method == "POST" and form.is_valid():
        save_alert_rule(form.instance)
        metric = form.instance.metric
        messages.success(request, f"Rule for {metric.asset_type.name}: {metric.label or metric.key} saved; it applies to new readings within seconds.")
        return redirect("rules")
    return render(request, "rule_form.html", {"form": form, "rule": rule})


@require_POST
@require_role(ADMIN)
def rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    get_object_or_404(AlertRule, id=rule_id).delete()
    messages.success(request, "Rule deleted.")
    return redirect("rules")
