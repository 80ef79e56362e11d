"""Agent-side test helpers (no Django): an artifact server with HTTP Basic auth, a signing key,
signed deploy commands, and a DeployManager around a ModelSlot."""

from __future__ import annotations

import base64
import json
import shutil
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_node.agent import artifact
from edge_node.agent.config import PlatformConfig
from edge_node.agent.deploy import DeployManager
from edge_node.agent.models import ModelSlot, load_model, set_current


class ArtifactServer:
    """Serves registered bytes at /api/models/<id>/download to node_id:secret only."""

    def __init__(self, credentials: dict[str, str]) -> None:
        self.files: dict[str, bytes] = {}
        self.credentials = credentials
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                header = self.headers.get("Authorization", "")
                user, _, secret = base64.b64decode(header.removeprefix("Basic ") or "Og==").decode().partition(":")
                if outer.credentials.get(user) != secret:
                    self.send_response(401)
                    self.end_headers()
                    return
                data = outer.files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Signer:
    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.public_pem = self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def manifest(self, folder: Path, data: bytes | None = None) -> dict[str, Any]:
        meta = json.loads((folder / "meta.json").read_text())
        data = (folder / "model.onnx").read_bytes() if data is None else data
        return {"name": meta["name"], "version": meta["version"], "kind": "anomaly", "sha256": artifact.sha256_hex(data),
                "size": len(data), "inputs": [], "outputs": [], "meta": meta}

    def sign(self, manifest: dict[str, Any]) -> str:
        return base64.b64encode(self.key.sign(artifact.signed_message(manifest))).decode()


def deploy_args(server: ArtifactServer, signer: Signer, folder: Path, *, serve: bytes | None = None,
                gates: dict[str, float] | None = None, model_id: int = 1) -> dict[str, Any]:
    """A deploy command's args for ``folder``'s model; ``serve`` replaces the bytes served (tampering)."""
    manifest = signer.manifest(folder)
    path = f"/api/models/{model_id}/download"
    server.files[path] = (folder / "model.onnx").read_bytes() if serve is None else serve
    return {"rollout": 1, "url": f"http://elsewhere.invalid{path}", "manifest": manifest, "signature": signer.sign(manifest),
            "gates": gates or {"max_p99_latency_ms": 50.0, "min_agreement": 0.8}, "shadow_windows": 200, "jitter_s": 0.0}


@dataclass
class NodeUnderTest:
    models_dir: Path
    slot: ModelSlot
    manager: DeployManager
    acks: list[dict[str, Any]] = field(default_factory=list)

    def final(self) -> dict[str, Any]:
        finals = [a for a in self.acks if a["report"].get("final")]
        assert finals, f"no final ack among {self.acks}"
        return finals[-1]


def make_node(tmp: Path, seed_folder: Path, server: ArtifactServer, signer: Signer, *, node_id: str = "n1",
              secret: str = "s3cret", public_pem: str | None = None) -> NodeUnderTest:
    models_dir = tmp / node_id
    name, version = seed_folder.parent.name, seed_folder.name
    shutil.copytree(seed_folder, models_dir / name / version)
    set_current(models_dir, name, version)
    slot = ModelSlot(load_model(models_dir, name))
    rows = np.random.default_rng(7).normal(0.0, 1.0, (120, 3)).astype(np.float32)
    platform = PlatformConfig(url=server.url, node_secret=secret, model_public_key=signer.public_pem if public_pem is None else public_pem)
    acks: list[dict[str, Any]] = []
    manager = DeployManager(node_id, models_dir, platform, publish_ack=acks.append,
                            slot_for=lambda n: slot if slot.model.name == n else None, live_rows=lambda n, f: rows)
    return NodeUnderTest(models_dir, slot, manager, acks)


class SlowModel:
    """A real model that takes ``extra_s`` longer per window for its first ``slow_calls`` calls
    (None: always): a slow model, or a host that was busy during one measurement."""

    def __init__(self, model: Any, extra_s: float, slow_calls: int | None = None) -> None:
        self._model, self.extra_s, self.slow_calls = model, extra_s, slow_calls
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def score_batch(self, rows: Any) -> Any:
        import time

        self.calls += 1
        if self.slow_calls is None or self.calls <= self.slow_calls:
            time.sleep(self.extra_s)
        return self._model.score_batch(rows)


def slow_loader(version: str, extra_s: float, slow_calls: int | None = None, base: Any = None) -> Any:
    """A loader that slows ``version`` down (others load as they are)."""
    from edge_node.agent.models import load_model

    def load(models_dir: Path, name: str, v: str) -> Any:
        model = (base or load_model)(models_dir, name, v)
        return SlowModel(model, extra_s, slow_calls) if v == version else model
    return load


def key_id(signer: Signer) -> str:
    from edge_node.agent.keyring import key_id_of

    return key_id_of(signer.key.public_key().public_bytes_raw())


def sign_command(signer: Signer, node_id: str, cid: str, ctype: str, args: dict[str, Any]) -> dict[str, Any]:
    """``args`` with ``auth``: ``signer``'s signature of the command for ``node_id`` (as the platform signs)."""
    from edge_node.agent.keyring import command_message

    signature = base64.b64encode(signer.key.sign(command_message(node_id, cid, ctype, args))).decode()
    return {**args, "auth": [{"key_id": key_id(signer), "signature": signature}]}
