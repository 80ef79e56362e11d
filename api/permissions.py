"""The UI's roles over the API: reading needs any role; each view names who may write."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from web.roles import ADMIN, FACILITY_MANAGER, PLANNER, ROLE_LABELS, has_role

READ_ROLES = (FACILITY_MANAGER, PLANNER, ADMIN)


class HasRole(BasePermission):
    """``view.read_roles`` (default: every role) for GET/HEAD/OPTIONS, ``view.write_roles``
    (default: admin) for the rest; admins hold every role."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not getattr(user, "is_authenticated", False):
            return False
        roles = getattr(view, "read_roles", READ_ROLES) if request.method in SAFE_METHODS else getattr(view, "write_roles", (ADMIN,))
        if has_role(user, *roles):
            return True
        self.message = f"This needs the {' or '.join(ROLE_LABELS.get(r, r) for r in roles)} role; your account does not have it."
        return False
