"""The node-facing artifact download: HTTP Basic with the node's id and secret, and only a
model that a running rollout sends to that node."""

from __future__ import annotations

import threading
from pathlib import Path

from django.contrib.auth.decorators import login_not_required
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from edge_node.audit import record_audit
from edge_node.node_auth import node_from_request, plain_http_refusal, throttled_response
from web.file_store import ArtifactMissing, local_file
from web.throttle import NODE_API, Throttle, client_addr

from . import const
from .models import ModelArtifact, RolloutNode


class DownloadGauge:
    """Downloads being served right now, and the most at once (the pacing's evidence)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0
        self.total = 0

    def enter(self) -> None:
        with self._lock:
            self.current += 1
            self.total += 1
            self.peak = max(self.peak, self.current)

    def leave(self) -> None:
        with self._lock:
            self.current -= 1

    def reset(self) -> None:
        with self._lock:
            self.current = self.peak = self.total = 0


gauge = DownloadGauge()

# An artifact is sent in blocks of this size (Django's default, 4 KiB, meant 20 writes for an
# 80 KiB model, each a trip through the server's write path).
DOWNLOAD_BLOCK_BYTES = 256 * 1024


class _CountedFile:
    """A file object that leaves the gauge when the response closes it."""

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by the response
        gauge.enter()
        self._closed = False

    def read(self, size: int = -1) -> bytes:
        return self._fh.read(size)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._fh.close()
            gauge.leave()


@login_not_required  # node credentials (HTTP Basic), not a user session
@require_GET
def download_artifact(request: HttpRequest, model_id: int) -> HttpResponse:
    refusal = plain_http_refusal(request)
    if refusal is not None:
        return refusal
    remote = request.META.get("REMOTE_ADDR")
    # By address only: locking a node id would let anyone who knows it lock the real node out
    # (and its 256-bit secret cannot be guessed anyway).
    throttle = Throttle(NODE_API)
    addr = client_addr(request)
    wait = throttle.locked_for(addr)
    if wait:
        return throttled_response(NODE_API, wait)
    node = node_from_request(request)
    if node is None:
        throttle.failure(addr, remote_addr=addr)
        response = JsonResponse({"error": "node credentials required"}, status=401)
        response["WWW-Authenticate"] = 'Basic realm="aiot-models"'
        return response
    model = next(iter(ModelArtifact.objects.filter(pk=model_id).order_by()[:1]), None)
    allowed = model is not None and RolloutNode.objects.filter(
        node=node, rollout__model=model, rollout__state__in=(const.CANARY, const.PROMOTING, const.DONE)).exists()
    if not allowed:
        record_audit(const.AUDIT_ARTIFACT_DOWNLOAD, actor=node.node_id, target=f"model {model_id}", ok=False,
                     detail={"reason": "not in a running rollout for this node"}, remote_addr=remote)
        return JsonResponse({"error": "no rollout sends this model to this node"}, status=404)
    from .registry import revoked_signature

    revoked = revoked_signature(model)
    if revoked:
        record_audit(const.AUDIT_ARTIFACT_DOWNLOAD, actor=node.node_id, target=f"model {model_id}", ok=False,
                     detail={"reason": revoked}, remote_addr=remote)
        return JsonResponse({"error": revoked}, status=403)
    try:
        path = local_file(model.file_path)  # written from the database on a host that lacks it
    except ArtifactMissing:
        return JsonResponse({"error": "artifact file missing on the platform"}, status=410)
    response = FileResponse(_CountedFile(path), content_type="application/octet-stream")
    response.block_size = DOWNLOAD_BLOCK_BYTES
    response["Content-Length"] = str(model.size)
    response["X-Model-Sha256"] = model.sha256
    return response
