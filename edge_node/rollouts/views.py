"""Admin pages: model registry and rollouts. Thin: parse, call registry/actions, render."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from web.roles import ADMIN, require_role

from . import actions, const, registry
from .forms import ProposeForm, UploadModelForm
from .models import ModelArtifact, Rollout


@require_role(ADMIN)
def model_list(request: HttpRequest) -> HttpResponse:
    form = UploadModelForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            model = registry.register_model(d["file"].read(), name=d["name"], version=d["version"], kind=d["kind"],
                                            declared=d["declared"], metadata=d["metadata"], quantize=d["quantize"],
                                            user=request.user, source=f"upload {d['file'].name}")
        except registry.RegistryError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Registered {model.label}")
            return redirect("rollouts:model", model_id=model.pk)
    models = ModelArtifact.objects.select_related("created_by").order_by("-created_at")[:200]
    return render(request, "rollouts/models.html", {"form": form, "models": models})


@require_role(ADMIN)
def model_detail(request: HttpRequest, model_id: int) -> HttpResponse:
    model = get_object_or_404(ModelArtifact, pk=model_id)
    form = ProposeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        node_ids = [n.strip() for n in d["node_ids"].split(",") if n.strip()]
        try:
            rollout = actions.propose_rollout(request.user, model, site=d["site"], tag=d["tag"], node_ids=node_ids,
                                              canary_share=d["canary_share"], max_p99_latency_ms=d["max_p99_latency_ms"],
                                              min_agreement=d["min_agreement"], max_load_failures=d["max_load_failures"],
                                              allow_downgrade=d["allow_downgrade"])
        except actions.RolloutError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Rollout {rollout.pk} proposed: another admin must approve it")
            return redirect("rollouts:rollout", rollout_id=rollout.pk)
    verified = registry.verify_stored(model)  # also finds the key id of a model signed before key ids
    return render(request, "rollouts/model_detail.html", {"model": model, "form": form, "verified": verified,
                                                          "inputs": _signature(model.inputs), "outputs": _signature(model.outputs),
                                                          "key_revoked": registry.revoked_signature(model) is not None,
                                                          "variants": model.quantized_variants.all()})


def _signature(args: list[dict] | None) -> list[dict]:
    """A model's inputs or outputs as the page shows them: a dynamic dimension (the batch) is
    'N', not Python's None: X tensor(float) [N, 3]."""
    return [{**a, "shape": "[" + ", ".join("N" if d is None else str(d) for d in a.get("shape") or []) + "]"} for a in args or []]


@require_role(ADMIN)
def rollout_list(request: HttpRequest) -> HttpResponse:
    rollouts = Rollout.objects.select_related("model", "proposer", "approver", "target_site")[:200]
    return render(request, "rollouts/rollouts.html", {"rollouts": rollouts})


def _actions(rollout: Rollout, user) -> tuple[list[dict], str]:
    """The buttons this admin may press in the rollout's current state, and a note when the one
    they might expect is not theirs (the proposer cannot approve)."""
    names = list(const.ACTIONS_BY_STATE.get(rollout.state, ()))
    note = ""
    if "approve" in names and rollout.proposer_id == user.pk:
        names.remove("approve")
        note = "Another admin must approve this rollout."
    actions = [{"name": n, "label": const.ACTION_LABELS[n], "url": reverse("rollouts:rollout-action", args=[rollout.pk, n])} for n in names]
    return actions, note


def _rounded(value, digits: int):
    """A node's reported figure as the page shows it (1.35 ms, not 1.3484); None stays None."""
    return round(value, digits) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _state(rollout: Rollout, user) -> dict:
    nodes = [{"node": rn.node.node_id, "state": rn.state, "state_label": rn.get_state_display(), "canary": rn.canary, "reason": rn.reason,
              "detail": rn.detail, "p99_ms": _rounded(rn.report.get("latency_p99_ms"), 2), "agreement": _rounded(rn.report.get("agreement"), 3),
              "version": rn.report.get("version", "")} for rn in rollout.nodes.select_related("node")]
    actions, note = _actions(rollout, user)
    return {"id": rollout.pk, "state": rollout.state, "state_label": rollout.get_state_display(), "reason": rollout.reason,
            "nodes": nodes, "actions": actions, "note": note}


@require_role(ADMIN)
def rollout_detail(request: HttpRequest, rollout_id: int) -> HttpResponse:
    rollout = get_object_or_404(Rollout.objects.select_related("model", "proposer", "approver"), pk=rollout_id)
    return render(request, "rollouts/rollout_detail.html", {"rollout": rollout, "state": _state(rollout, request.user)})


@require_role(ADMIN)
def rollout_state(request: HttpRequest, rollout_id: int) -> JsonResponse:
    return JsonResponse(_state(get_object_or_404(Rollout, pk=rollout_id), request.user))


_ACTIONS = {"approve": actions.approve_rollout, "pause": actions.pause_rollout, "resume": actions.resume_rollout,
            "cancel": actions.cancel_rollout, "rollback": actions.rollback_rollout}


@require_role(ADMIN)
@require_POST
def rollout_action(request: HttpRequest, rollout_id: int, action: str) -> HttpResponse:
    rollout = get_object_or_404(Rollout, pk=rollout_id)
    fn = _ACTIONS.get(action)
    if fn is None:
        return HttpResponse(status=404)
    try:
        fn(request.user, rollout)
        messages.success(request, f"Rollout {rollout.pk} {const.ACTION_DONE[action]}.")
    except actions.RolloutError as exc:
        messages.error(request, str(exc))
    return redirect("rollouts:rollout", rollout_id=rollout.pk)
