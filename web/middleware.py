"""Every page needs a login, except the login page itself, static files and the health check."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse

PUBLIC_PREFIXES = ("/login/", "/static/", "/favicon.ico", "/healthz", "/admin/login/", "/api/enroll", "/api/models/",
                   # The REST API answers 401/403 as JSON itself (tokens or the session): no login redirect.
                   "/api/v1/", "/api/schema/")


class LoginRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The path first: static files never touch the session (no "Vary: Cookie" on them).
        if not request.path.startswith(PUBLIC_PREFIXES) and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        return self.get_response(request)
