"""Validation of where a subscription sends: an email address, or a webhook URL that is plain
http(s) and does not point back at the platform (a webhook to ourselves is a loop, and a way
to make the platform call its own endpoints)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from notify import const

LOOPBACK = "loopback"  # every spelling of this machine: localhost, 127.0.0.0/8, ::1


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host literal stands for in any notation the resolver accepts (127.1,
    2130706433, 0x7f.0.0.1 and ::ffff:127.0.0.1 are all 127.0.0.1); None for a name."""
    host = host.lower().strip("[]").rstrip(".")
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return getattr(ip, "ipv4_mapped", None) or ip


def _canonical(host: str) -> str:
    ip = _ip(host)
    if ip is not None:
        return LOOPBACK if ip.is_loopback else str(ip)
    host = host.lower().rstrip(".")
    return LOOPBACK if host == "localhost" or host.endswith(".localhost") else host


def forbidden_address(host: str) -> str | None:
    """Why no webhook may go to this host at all (the unspecified address is this machine;
    link-local holds cloud metadata services), or None."""
    ip = _ip(host)
    if ip is None:
        return None
    if ip.is_unspecified:
        return f"{ip} is not a destination"
    if ip.is_link_local:
        return f"{ip} is a link-local address (cloud metadata services live there)"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    return None


def _netloc(host: str, port: int | None, scheme: str) -> tuple[str, int]:
    return _canonical(host), port or (443 if scheme == "https" else 80)


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
            found.update((_canonical(host), p) for p in ports)
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
    why = forbidden_address(parts.hostname)
    if why:
        raise ValidationError(f"a webhook cannot go there: {why}")
    mine = _host_port(request_host, request_scheme) if request_host else None
    own = platform_addresses((mine[1],) if mine else ())
    if mine:
        own.add(mine)
    if _netloc(parts.hostname, port, parts.scheme) in own:
        raise ValidationError("this URL points at the platform itself")
    return url.strip()


def check_resolved(url: str) -> None:
    """Before a webhook is sent: the addresses its host resolves to now (a name can be made to
    point anywhere after it was checked) are not forbidden and not the platform's own ports.
    PermissionError says why."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    own = platform_addresses()
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except OSError:
        return  # the request itself fails with the resolver's error, recorded on the delivery
    for *_rest, sockaddr in infos:
        address = str(sockaddr[0])
        why = forbidden_address(address)
        if why or (_canonical(address), port) in own:
            raise PermissionError(f"refused to send to {parts.hostname} ({address}): {why or 'that is the platform itself'}")


def validate_target(channel: str, target: str, request_host: str = "", request_scheme: str = "http") -> str:
    if channel == const.CHANNEL_EMAIL:
        validate_email(target)
        return target.strip()
    if channel == const.CHANNEL_WEBHOOK:
        return validate_webhook_url(target, request_host, request_scheme)
    raise ValidationError(f"unknown channel {channel!r}")
