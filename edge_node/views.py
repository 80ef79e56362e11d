"""Fleet-security pages (admins only) and the public enrollment API (POST /api/enroll)."""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from edge_node import const
from edge_node.audit import actor_name, readable, record_audit
from edge_node.forms import AuditFilterForm, EnrollmentTokenForm
from edge_node.key_rotation import RotationError, keyring_rows, rotate_signing_keys
from edge_node.models import AuditEvent, EdgeNode, EnrollmentToken
from edge_node.node_auth import plain_http_refusal, throttled_response
from edge_node.services import (
    EnrollmentError,
    create_enrollment_token,
    enroll_node,
    revoke_node,
)
from web.roles import ADMIN, require_role
from web.throttle import ENROLL, Throttle

log = logging.getLogger(__name__)
AUDIT_PAGE_ROWS = 200


def client_addr(request: HttpRequest) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is the client's to forge. Behind a proxy, run daphne
    # with --proxy-headers so REMOTE_ADDR is the real client.
    return request.META.get("REMOTE_ADDR") or None


def _json_error(message: str, status: int, code: str) -> JsonResponse:
    return JsonResponse({"error": message, "code": code}, status=status)


@login_not_required  # authenticated by its one-time token
@csrf_exempt  # a machine-to-machine call authenticated by its one-time token, not a browser form
@never_cache
def enroll_api(request: HttpRequest) -> JsonResponse:
    addr = client_addr(request)
    if request.method != "POST":
        response = _json_error("method not allowed: POST a JSON body {\"token\": \"...\"}", 405, "method_not_allowed")
        response["Allow"] = "POST"
        return response
    refusal = plain_http_refusal(request)
    if refusal is not None:
        log.warning("enrollment over plain HTTP refused from %s", addr)
        return refusal
    throttle = Throttle(ENROLL)
    wait = throttle.locked_for(addr or "unknown")
    if wait:
        log.warning("enrollment locked out for %s", addr)
        return throttled_response(ENROLL, wait)
    response = _enroll(request, addr)
    if response.status_code >= 400:
        throttle.failure(addr or "unknown", remote_addr=addr)
    return response


def _enroll(request: HttpRequest, addr: str | None) -> JsonResponse:
    try:
        if len(request.body) > const.ENROLL_MAX_BODY_BYTES:
            raise EnrollmentError("body_too_large", "request body too large", 413)
        try:
            body = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise EnrollmentError("malformed_body", "malformed body: expected a JSON object {\"token\": \"...\"}", 400) from None
        if not isinstance(body, dict) or not isinstance(body.get("token"), str) or not body["token"]:
            raise EnrollmentError("malformed_body", "malformed body: expected a JSON object {\"token\": \"...\"}", 400)
        name = body.get("name") if isinstance(body.get("name"), str) else ""
        token = body["token"]
    except EnrollmentError as exc:
        record_audit(const.AUDIT_ENROLL, actor="anonymous", ok=False, detail={"error": exc.code, "message": exc.message}, remote_addr=addr)
        return _json_error(exc.message, exc.status, exc.code)
    try:
        result = enroll_node(token, remote_addr=addr, name=name)
    except EnrollmentError as exc:
        return _json_error(exc.message, exc.status, exc.code)
    return JsonResponse(result.as_json(), status=201)


def _platform_url(request: HttpRequest) -> str:
    return settings.ENROLLMENT_PUBLIC_URL.rstrip("/") or request.build_absolute_uri("/").rstrip("/")


# Session key of a token just created, waiting for the one page view that shows it.
NEW_TOKEN_SESSION_KEY = "edge_node.new_enrollment_token"


@require_role(ADMIN)
def tokens(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = EnrollmentTokenForm(request.POST)
        if form.is_valid():
            d = form.cleaned_data
            token, plaintext = create_enrollment_token(d["site"], request.user, node_id=d["node_id"] or "", tags=d["tags"] or "",
                                                       ttl_s=d["ttl_hours"] * 3600, remote_addr=client_addr(request))
            # Post/redirect/get, so Reload does not create a second token. The plaintext waits in
            # this admin's server-side session for the one GET that shows it and is removed there;
            # it never travels in a URL or a cookie.
            request.session[NEW_TOKEN_SESSION_KEY] = {"id": token.pk, "plaintext": plaintext}
            return redirect(reverse("edge_node:tokens"))
    else:
        form = EnrollmentTokenForm()
    created = None
    pending = request.session.pop(NEW_TOKEN_SESSION_KEY, None) if request.method == "GET" else None
    if pending:
        token = EnrollmentToken.objects.select_related("site").filter(pk=pending["id"]).first()
        if token is not None:
            plaintext = pending["plaintext"]
            created = {"token": token, "plaintext": plaintext,
                       "command": f"python -m edge_node.agent enroll --url {_platform_url(request)} --token {plaintext} --config node.toml"}
    rows = EnrollmentToken.objects.select_related("site", "created_by", "enrolled_node")[:100]
    response = render(request, "edge_node/tokens.html", {"form": form, "created": created, "tokens": rows, "now": timezone.now()})
    response["Cache-Control"] = "no-store"
    return response


@require_role(ADMIN)
def manage_nodes(request: HttpRequest) -> HttpResponse:
    from edge_node.signing_keys import active_key_id, keyring_version

    nodes = EdgeNode.objects.select_related("site").order_by("revoked_at", "node_id")
    return render(request, "edge_node/manage_nodes.html", {"nodes": nodes, "keys": keyring_rows(), "keyring_version": keyring_version(),
                                                          "active_key_id": active_key_id()})


@require_role(ADMIN)
@require_POST
def rotate_keys(request: HttpRequest) -> HttpResponse:
    try:
        new = rotate_signing_keys(request.user, revoke_previous=request.POST.get("revoke_previous") == "on",
                                  reason=request.POST.get("reason", "")[:300])
    except RotationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"New model-signing key {new.key_id} is active; nodes receive it by a signed keyring command "
                                   "(offline nodes when they return).")
    return redirect(reverse("edge_node:nodes"))


@require_role(ADMIN)
@require_POST
def revoke(request: HttpRequest, node_id: str) -> HttpResponse:
    node = get_object_or_404(EdgeNode, node_id=node_id)
    note = revoke_node(node, actor=actor_name(request.user), remote_addr=client_addr(request), reason=request.POST.get("reason", "")[:200])
    level = messages.WARNING if "NOT" in note else messages.SUCCESS
    messages.add_message(request, level, f"Node {node.node_id} revoked: {note}.")
    return redirect(reverse("edge_node:nodes"))


@require_role(ADMIN)
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    events = AuditEvent.objects.all()
    if form.is_valid():
        if form.cleaned_data["node"]:
            term = form.cleaned_data["node"]
            events = events.filter(Q(target__icontains=term) | Q(actor__icontains=term))
        if form.cleaned_data["action"]:
            events = events.filter(action=form.cleaned_data["action"])
    actions = AuditEvent.objects.order_by().values_list("action", flat=True).distinct()
    rows = list(events.order_by("-at", "-id")[:AUDIT_PAGE_ROWS])
    for e in rows:
        e.detail_items = [(k, readable(v)) for k, v in (e.detail or {}).items()] if isinstance(e.detail, dict) else [("detail", readable(e.detail))]
    return render(request, "edge_node/audit.html", {"form": form, "events": rows, "actions": sorted(set(actions)), "limit": AUDIT_PAGE_ROWS})
