"""Typed helpers that read settings from the environment.

A bad value raises ImproperlyConfigured at start-up, naming the variable. ``env_secret``
also reads ``NAME_FILE`` (a path), the usual way to hand secrets to containers.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, "").strip().lower() or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), got {raw!r}")


def env_int(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum or maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_secret(name: str, default: str = "") -> str:
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc.strerror}") from None
    return os.environ.get(name, default)


def env_url(name: str, schemes: tuple[str, ...]) -> str:
    """An optional URL; empty means "use the embedded default"."""
    raw = os.environ.get(name, "").strip()
    if raw and urlsplit(raw).scheme not in schemes:
        raise ImproperlyConfigured(f"{name} must be a URL with scheme {' or '.join(schemes)}, got {raw!r}")
    return raw


SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _sqlite(name: str, sqlite_path: Path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        # one file per test run: parallel runs (and their subprocesses) never share it
        "TEST": {"NAME": str(sqlite_path.with_name(f"test-{os.getpid()}.sqlite3"))},
    }


def database_from_url(url: str, sqlite_path: Path) -> dict:
    """Django DATABASES['default'] for a postgres:// or sqlite:/// URL; SQLite (WAL) when empty.

    Parsed by dj-database-url: percent-encoded user names and passwords are decoded, and query
    parameters (``?sslmode=require``, ``?connect_timeout=5``) become connection options.
    """
    if not url:
        return _sqlite(str(sqlite_path), sqlite_path)
    scheme = urlsplit(url).scheme
    if scheme not in ("postgres", "postgresql", "sqlite"):
        raise ImproperlyConfigured(f"DATABASE_URL must start with postgres:// or sqlite:///, got {scheme}://")
    try:
        config = dict(dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True))
    except ValueError as exc:  # the message may quote the URL: never echo a password
        raise ImproperlyConfigured(f"DATABASE_URL cannot be parsed ({exc.__class__.__name__}); check its format: postgres://user:password@host:5432/name") from None
    if scheme == "sqlite":
        return _sqlite(config["NAME"], sqlite_path)
    if not config.get("NAME"):
        raise ImproperlyConfigured("DATABASE_URL names no database: postgres://user:password@host:5432/<name>")
    options = config.setdefault("OPTIONS", {})
    sslmode = options.get("sslmode")
    if sslmode is not None and sslmode not in SSLMODES:
        raise ImproperlyConfigured(f"DATABASE_URL: sslmode must be one of {', '.join(SSLMODES)}, got {sslmode!r}")
    return config


def channel_layers_from_url(url: str, kind: str = "pubsub", prefix: str = "asgi", max_connections: int = 2000) -> dict:
    """Django CHANNEL_LAYERS for a Redis URL, or the in-memory layer (one process) when empty.

    "pubsub": one Redis PUBLISH per group message, fanned out to the group's sockets inside
    each web process -- live updates are fire-and-forget, a reconnecting page catches up from
    the database. "lists": channels_redis' list-based layer, one Redis message per socket,
    buffered (capacity, expiry) while a consumer is briefly away, at several times the cost.
    """
    if not url:
        return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    if kind == "pubsub":
        return {"default": {"BACKEND": "web.channel_layer.SharedDecodePubSubChannelLayer", "CONFIG": {"hosts": [url], "prefix": prefix}}}
    if kind == "lists":
        return {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [{"address": url, "max_connections": max_connections}], "capacity": 1500, "expiry": 30, "prefix": prefix},
            }
        }
    raise ImproperlyConfigured(f"unknown channel layer kind {kind!r}")
