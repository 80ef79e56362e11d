"""HTTP authentication of edge nodes (e.g. model artifact downloads): HTTP Basic with the node id
as user name and the secret it received at enrollment as password."""

from __future__ import annotations

import base64
import binascii

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from edge_node.models import EdgeNode
from edge_node.services import authenticate_node


def basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    node_id, sep, secret = decoded.partition(":")
    if not sep or not node_id or not secret:
        return None
    return node_id, secret


def node_from_request(request: HttpRequest) -> EdgeNode | None:
    """The authenticated, non-revoked node making ``request``, or None (answer 401)."""
    creds = basic_credentials(request)
    if creds is None:
        return None
    return authenticate_node(*creds)


def plain_http_refusal(request: HttpRequest) -> JsonResponse | None:
    """A 403 when the node API is reached over plain HTTP and HTTPS is required (production):
    enrollment hands out secrets, downloads carry them. None when the request may go on."""
    if not settings.REQUIRE_HTTPS_NODE_API or request.is_secure():
        return None
    return JsonResponse({"error": "HTTPS required: this platform refuses node credentials over plain HTTP (use https://)", "code": "https_required"},
                        status=403)


def throttled_response(scope: str, wait: int) -> JsonResponse:
    from web.throttle import refused

    refused(scope, wait)
    response = JsonResponse({"error": f"too many failed attempts from this address; wait {wait} s", "code": "rate_limited"}, status=429)
    response["Retry-After"] = str(wait)
    return response
