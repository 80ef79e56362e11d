"""Validation of where a subscription sends: an email address, or a webhook URL that is plain
http(s) and does not point back at the platform (a webhook to ourselves is a loop, and a way
to make the platform call its own endpoints)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from notify import const


def _netloc(host: str, port: int | None, scheme: str) -> tuple[str, int]:
    return host.lower().strip("[]"), port or (443 if scheme == "https" else 80)


def platform_addresses(extra_ports: tuple[int, ...] = ()) -> set[tuple[str, int]]:
    """(host, port) pairs the platform answers on: PLATFORM_PUBLIC_URL, ENROLLMENT_PUBLIC_URL and
    every ALLOWED_HOSTS name on the ports those URLs use."""
    urls = [u for u in (settings.PLATFORM_PUBLIC_URL, settings.ENROLLMENT_PUBLIC_URL) if u]
    found: set[tuple[str, int]] = set()
    ports: set[int] = set(settings.NOTIFY_PLATFORM_PORTS) | set(extra_ports)
    for url in urls:
        parts = urlsplit(url)
        if parts.hostname:
            found.add(_netloc(parts.hostname, parts.port, parts.scheme))
            ports.add(parts.port or (443 if parts.scheme == "https" else 80))
    for host in settings.ALLOWED_HOSTS:
        host = host.lstrip(".")
        if host and host != "*":
            found.update((host.lower().strip("[]"), p) for p in ports)
    return found


def _host_port(host: str, scheme: str) -> tuple[str, int] | None:
    parts = urlsplit(f"{scheme}://{host}")
    try:
        return _netloc(parts.hostname, parts.port, scheme) if parts.hostname else None
    except ValueError:
        return None


def validate_webhook_url(url: str, request_host: str = "", request_scheme: str = "http") -> str:
    """``request_host``: the Host the form was sent to (the platform as the user reaches it)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationError("a webhook URL must start with http:// or https://")
    if not parts.hostname:
        raise ValidationError("a webhook URL needs a host")
    if parts.username or parts.password:
        raise ValidationError("put no user or password in the URL: the request is signed with the subscription's secret")
    mine = _host_port(request_host, request_scheme) if request_host else None
    own = platform_addresses((mine[1],) if mine else ())
    if mine:
        own.add(mine)
    if _netloc(parts.hostname, port, parts.scheme) in own:
        raise ValidationError("this URL points at the platform itself")
    return url.strip()


def validate_target(channel: str, target: str, request_host: str = "", request_scheme: str = "http") -> str:
    if channel == const.CHANNEL_EMAIL:
        validate_email(target)
        return target.strip()
    if channel == const.CHANNEL_WEBHOOK:
        return validate_webhook_url(target, request_host, request_scheme)
    raise ValidationError(f"unknown channel {channel!r}")
