"""The Content-Security-Policy header (Django 5.2 has none built in): no inline script or
style, everything from this origin; WebSockets to it. Off with AIOT_CSP=0."""

from __future__ import annotations

from django.conf import settings


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if settings.CSP_ENABLED and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = settings.CSP_POLICY
        return response
