"""Errors as JSON: {"error": "<what went wrong>", "fields": {"<field>": ["<why>"]}}."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

log = logging.getLogger(__name__)


def _messages(value, path: str, out: dict[str, list[str]]) -> None:
    """DRF's nested errors ({"assets": {0: ["..."]}}, {"params": {"policy": {...}}}) as
    dotted field paths ("assets.0", "params.policy.name") with plain messages."""
    if isinstance(value, dict):
        for k, v in value.items():
            here = path if path and k == "non_field_errors" else (f"{path}.{k}" if path else str(k))
            _messages(v, here, out)
    elif isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        for i, v in enumerate(value):
            if v:  # a list field's error list has an empty entry per valid item
                _messages(v, f"{path}.{i}" if isinstance(v, dict) else path, out)
    else:
        out.setdefault(path or "non_field_errors", []).extend(str(x) for x in (value if isinstance(value, list) else [value]))


def _flatten(detail) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        _messages(detail, "", out)
    return out


def json_errors(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None:
        return None
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    fields = _flatten(detail)
    if fields:
        message = "Invalid input: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items())
    elif isinstance(detail, list):
        message = " ".join(str(d) for d in detail)
    else:
        message = str(detail)
    body = {"error": message}
    if fields:
        body["fields"] = {k: v for k, v in fields.items() if k != "non_field_errors"} or fields
    request = context.get("request")
    log.info("API %s %s refused (%s): %s", getattr(request, "method", "?"), getattr(request, "path", "?"), response.status_code, message)
    return Response(body, status=response.status_code, headers={k: v for k, v in response.items()})
