"""One throttling layer for every door a stranger can knock on: login, admin login, enrollment,
the node API. Backed by the cache (Redis in production, so every web process counts together).

Only failures count: after ``THROTTLE_MAX_FAILURES`` failures from one client address (or for
one user name / node id) within ``THROTTLE_WINDOW_S``, that address or name is locked out for
``THROTTLE_LOCKOUT_S``. A locked-out request is answered 429 before any credential is checked,
so an abuser costs one cache lookup. The start of each lockout is written to the audit log.
"""

from __future__ import annotations

import hashlib
import logging
import threading

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

log = logging.getLogger(__name__)

AUDIT_LOCKOUT = "throttle.lockout"
LOGIN = "login"
ADMIN_LOGIN = "admin-login"
ENROLL = "enroll"
NODE_API = "node-api"


def client_addr(request: HttpRequest) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is the client's to forge (daphne --proxy-headers behind a proxy).
    return request.META.get("REMOTE_ADDR") or "unknown"


class Throttle:
    """Failure counting and lockouts for one ``scope`` (login, enroll, ...)."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    @staticmethod
    def enabled() -> bool:
        return settings.THROTTLE_MAX_FAILURES > 0

    def _key(self, kind: str, ident: str) -> str:
        digest = hashlib.sha256(ident.encode("utf-8", "replace")).hexdigest()[:24]
        return f"throttle:{getattr(settings, 'THROTTLE_NAMESPACE', '')}:{self.scope}:{kind}:{digest}"

    def locked_for(self, *idents: str) -> int:
        """Seconds of lockout left for the first locked ident, 0 when none is locked."""
        if not self.enabled():
            return 0
        found = cache.get_many([self._key("lock", i) for i in idents if i])
        return settings.THROTTLE_LOCKOUT_S if found else 0

    def failure(self, *idents: str, remote_addr: str | None = None) -> bool:
        """Count one failure against each ident; True when it started a lockout (audited)."""
        if not self.enabled():
            return False
        started = []
        for ident in idents:
            if not ident:
                continue
            key = self._key("fail", ident)
            cache.add(key, 0, settings.THROTTLE_WINDOW_S)
            try:
                count = cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, settings.THROTTLE_WINDOW_S)
                count = 1
            if count >= settings.THROTTLE_MAX_FAILURES and cache.add(self._key("lock", ident), 1, settings.THROTTLE_LOCKOUT_S):
                started.append(ident)
        for ident in started:
            _audit_lockout(self.scope, ident, remote_addr)
        return bool(started)

    def success(self, *idents: str) -> None:
        """A good login clears the failures counted against its user name."""
        if self.enabled():
            cache.delete_many([self._key("fail", i) for i in idents if i])


def _audit_lockout(scope: str, ident: str, remote_addr: str | None) -> None:
    from edge_node.audit import record_audit
    from web import metrics

    metrics.LOCKOUTS.labels(scope=scope).inc()
    record_audit(AUDIT_LOCKOUT, actor="anonymous", target=f"{scope}:{ident}"[:200], ok=False,
                 detail={"scope": scope, "lockout_s": settings.THROTTLE_LOCKOUT_S, "failures": settings.THROTTLE_MAX_FAILURES,
                         "window_s": settings.THROTTLE_WINDOW_S}, remote_addr=remote_addr if remote_addr != "unknown" else None)


def refused(scope: str, retry_after: int) -> None:
    from web import metrics

    metrics.THROTTLED.labels(scope=scope).inc()


class LoginThrottleMiddleware:
    """Throttles POSTs to the login pages (ours and the admin's) by address and by user name.

    A password check costs about a second of CPU (PBKDF2, Django's 1,000,000 iterations): at most
    LOGIN_MAX_CONCURRENT_CHECKS run at once in a process, so a guessing run before its lockout
    takes one core at most, never every core from the pages and the node API."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.checks = threading.BoundedSemaphore(max(1, settings.LOGIN_MAX_CONCURRENT_CHECKS))

    def __call__(self, request: HttpRequest) -> HttpResponse:
        scope = {settings.LOGIN_URL: LOGIN, "/admin/login/": ADMIN_LOGIN}.get(request.path)
        if scope is None or request.method != "POST":
            return self.get_response(request)
        throttle = Throttle(scope)
        addr = client_addr(request)
        username = (request.POST.get("username") or "").strip().lower()
        user_ident = f"user:{username}" if username else ""
        with self.checks:
            # Checked once the turn comes, and the outcome counted before the next one's turn:
            # guesses queued behind the one that locked the name stop here.
            wait = throttle.locked_for(addr, user_ident)
            if not wait:
                response = self.get_response(request)
                user = getattr(request, "user", None)
                if user is not None and user.is_authenticated:
                    throttle.success(user_ident)
                elif response.status_code == 200:  # the form again, with its error
                    throttle.failure(addr, user_ident, remote_addr=addr)
                return response
        refused(scope, wait)
        log.warning("%s locked out: address %s, user name %r", scope, addr, username)
        response = render(request, "403.html", {"reason": f"Too many failed logins. Try again in {wait // 60 or 1} minutes."}, status=429)
        response["Retry-After"] = str(wait)
        return response
