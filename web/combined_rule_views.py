"""Thin views for combined rules (AND/OR over metrics, rate of change, timed escalation): admins
only, like the threshold rules beside them on /rules/."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from twins.combined_rule_edits import delete_combined_rule, save_combined_rule
from twins.models import CombinedRule
from web.combined_rule_forms import rule_forms, valid
from web.roles import ADMIN, require_role


@require_role(ADMIN)
def combined_rule_edit(request: HttpRequest, rule_id: int | None = None) -> HttpResponse:
    rule = get_object_or_404(CombinedRule, id=rule_id) if rule_id is not None else None
    form, conditions = rule_forms(request.POST if request.method == "POST" else None, rule)
    if request.method == "POST" and valid(form, conditions):
        try:
            saved = save_combined_rule(form.instance, conditions.kept(), conditions.removed())
        except ValidationError as exc:  # a model rule the forms did not foresee: shown, nothing stored
            form.add_error(None, exc)
        else:
            messages.success(request, f"Combined rule “{saved.name}” saved; it applies to new readings within seconds.")
            return redirect("rules")
    return render(request, "combined_rule_form.html", {"form": form, "conditions": conditions, "rule": rule})


@require_POST
@require_role(ADMIN)
def combined_rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    name = delete_combined_rule(rule_id)
    if name is None:
        messages.warning(request, "That combined rule was deleted already.")
    else:
        messages.success(request, f"Combined rule “{name}” deleted.")
    return redirect("rules")
