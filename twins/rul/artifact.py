"""The model artifact: a directory with model.onnx (features -> RUL) and meta.json."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path

import numpy as np
import onnx

from edge_node.agent.files import write_atomic

from . import const
from .booster import booster_to_onnx
from .train import TrainedRul


class ModelArtifactError(ValueError):
    """A model directory that is missing, incomplete or inconsistent."""


def export_onnx(trained: TrainedRul) -> bytes:
    """The fitted regressor as ONNX: input ``features`` float32 [N, F], output the RUL [N, 1]."""
    return booster_to_onnx(trained.estimator, trained.spec.n_features)


def build_meta(trained: TrainedRul, onnx_bytes: bytes, name: str | None = None) -> dict:
    digest = hashlib.sha256(onnx_bytes).hexdigest()
    created = datetime.now(UTC).replace(microsecond=0)
    version = f"rul-{created.strftime('%Y%m%dT%H%M%SZ')}-{digest[:12]}"
    spec = trained.spec
    return {
        "format": const.FORMAT_VERSION,
        "kind": "rul",
        "name": name or version,
        "version": version,
        "created": created.isoformat(),
        "model_sha256": digest,
        "signals": list(spec.inputs),
        "window": spec.window,
        "cap": trained.cap,
        "feature_names": spec.feature_names,
        "features": spec.to_json(),
        "scaler": {
            "means": spec.to_json()["means"],
            "scales": spec.to_json()["scales"],
        },
        "onnx": {
            "input": const.ONNX_INPUT_NAME,
            "input_shape": [None, spec.n_features],
            "opset": const.ONNX_OPSET,
        },
        "conformal": trained.bands.to_json(),
        # The figures shown next to every estimate: the validation protocol's mean and sd.
        "metrics": {
            k: v for k, v in trained.validation["protocol"].items()
            if k.split("_sd")[0] in ("rmse", "phm_score", "coverage80", "interval_width_mean")
            or k in ("engines", "seeds", "folds", "cuts_per_unit")
        },
        "validation": trained.validation,
        "training": trained.training,
        "split": {
            k: [v.item() if isinstance(v, np.generic) else v for v in units]
            for k, units in trained.split.items()
        },
    }


def save_model(
    trained: TrainedRul, out_dir: str | PathLike[str], name: str | None = None
) -> dict:
    """Export to ONNX and write ``model.onnx`` + ``meta.json`` into ``out_dir``; returns the meta."""
    onnx_bytes = export_onnx(trained)
    meta = build_meta(trained, onnx_bytes, name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / const.MODEL_FILENAME, onnx_bytes, 0o644)
    # meta.json last: a directory with meta.json is complete.
    write_atomic(out / const.META_FILENAME, json.dumps(meta, indent=2) + "\n", 0o644)
    return meta


def read_artifact(path: str | PathLike[str]) -> tuple[bytes, dict]:
    """The ONNX bytes and meta of a model directory, checked against each other."""
    root = Path(path)
    meta_path, model_path = root / const.META_FILENAME, root / const.MODEL_FILENAME
    for p in (meta_path, model_path):
        if not p.is_file():
            raise ModelArtifactError(f"{root}: missing {p.name}")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelArtifactError(f"{meta_path}: not JSON ({exc})") from exc
    if meta.get("kind") != "rul" or meta.get("format") not in const.READABLE_FORMATS:
        raise ModelArtifactError(
            f"{meta_path}: not a RUL model of format {' or '.join(map(str, const.READABLE_FORMATS))}"
        )
    onnx_bytes = model_path.read_bytes()
    if hashlib.sha256(onnx_bytes).hexdigest() != meta.get("model_sha256"):
        raise ModelArtifactError(
            f"{model_path}: sha256 differs from meta.json (corrupt or replaced)"
        )
    return onnx_bytes, meta


def onnx_size_nodes(onnx_bytes: bytes) -> int:
    """Number of tree nodes in the exported ensemble (artifact size check)."""
    model = onnx.load_from_string(onnx_bytes)
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name == "nodes_nodeids":
                return len(attr.ints)
    return 0
