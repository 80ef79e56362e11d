"""The API tokens page: create (the key shown once), list with last use, revoke."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from api.models import ApiToken
from api.tokens import create_token, revoke_token
from web.roles import ADMIN, FACILITY_MANAGER, PLANNER, require_role

ROLES = (FACILITY_MANAGER, PLANNER, ADMIN)
NEW_KEY = "api_new_token_key"


@require_role(*ROLES)
def tokens(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        token, key = create_token(request.user, request.POST.get("name", ""))
        messages.success(request, f"Token '{token.name}' created: copy the key now, it is not shown again.")
        # Redirect after the POST (Reload never makes a second token); the key rides in the
        # session for exactly one page view.
        request.session[NEW_KEY] = key
        return redirect("api-tokens")
    new_key = request.session.pop(NEW_KEY, None)
    rows = ApiToken.objects.filter(user=request.user)
    return render(request, "api/tokens.html", {"tokens": rows, "new_key": new_key})


@require_POST
@require_role(*ROLES)
def revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    if revoke_token(request.user, token_id):
        messages.success(request, "Token revoked: it no longer works.")
    else:
        messages.warning(request, "No such live token.")
    return redirect("api-tokens")
