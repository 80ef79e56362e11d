"""The three roles (Django groups) and who may see what."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

FACILITY_MANAGER = "facility_manager"
PLANNER = "planner"
ADMIN = "admin"
ROLES = (FACILITY_MANAGER, PLANNER, ADMIN)
ROLE_LABELS = {FACILITY_MANAGER: "facility manager", PLANNER: "maintenance planner", ADMIN: "admin"}


def roles_of(user: Any) -> set[str]:
    if not getattr(user, "is_authenticated", False):
        return set()
    cached = getattr(user, "_aiot_roles", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        if user.is_superuser:
            cached.add(ADMIN)
        user._aiot_roles = cached
    return cached


def has_role(user: Any, *roles: str) -> bool:
    """True when the user holds one of ``roles``; admins hold every role."""
    mine = roles_of(user)
    return ADMIN in mine or bool(mine.intersection(roles))


def require_role(*roles: str) -> Callable:
    """View decorator: 403 (the friendly page) unless the user holds one of ``roles``."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any):
            if not has_role(request.user, *roles):
                needed = " or ".join(ROLE_LABELS.get(r, r) for r in roles)
                raise PermissionDenied(f"This page is for the {needed} role; your account does not have it. Ask an admin if you need it.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def visible_sites(user: Any):
    """The sites a user may see: every site for admins, otherwise the sites they belong to."""
    from twins.models import Site

    if ADMIN in roles_of(user):
        return Site.objects.all()
    if not roles_of(user):
        return Site.objects.none()
    return Site.objects.filter(members=user)


def roles_context(request: HttpRequest) -> dict[str, Any]:
    mine = roles_of(request.user)
    return {
        "user_roles": sorted(mine),
        "user_role_labels": [ROLE_LABELS.get(r, r) for r in sorted(mine)],
        "is_admin_role": ADMIN in mine,
        "is_planner_role": PLANNER in mine or ADMIN in mine,
        "is_manager_role": FACILITY_MANAGER in mine or ADMIN in mine,
    }
