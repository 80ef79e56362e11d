"""Anomaly models on disk and the atomic switch between versions.

Layout of a models directory::

    models/<name>/<version>/model.onnx
    models/<name>/<version>/meta.json   {"name", "version", "asset_type", "features": [...],
                                         "threshold", "critical_threshold", "consecutive", "kind"}
    models/<name>/current               text file holding the version in use

``set_current`` rewrites the pointer atomically (write a temp file, ``os.replace``), and a
``ModelSlot`` swaps the loaded model under a lock, so a reader always sees one whole model.
A later issue adds signature checks and rollback on top of these two functions.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import const

log = logging.getLogger(__name__)


class ModelError(RuntimeError):
    """A model cannot be loaded; the message names the model and the file."""


@dataclass
class AnomalyModel:
    """An ONNX anomaly model. ``score`` is higher-is-more-anomalous: the negated
    IsolationForest decision function, so > threshold means anomalous."""

    name: str
    version: str
    asset_type: str
    features: list[str]
    threshold: float
    critical_threshold: float
    consecutive: int
    session: Any  # onnxruntime.InferenceSession
    input_name: str
    score_output: str

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    def vector(self, values: dict[str, float]) -> np.ndarray | None:
        try:
            return np.array([[values[f] for f in self.features]], dtype=np.float32)
        except KeyError:
            return None

    def score(self, values: dict[str, float]) -> float | None:
        x = self.vector(values)
        if x is None:
            return None
        out = self.session.run([self.score_output], {self.input_name: x})[0]
        return -float(np.ravel(out)[0])

    def score_batch(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run([self.score_output], {self.input_name: x.astype(np.float32)})[0]
        return -np.ravel(out)


def current_version(models_dir: Path, name: str) -> str:
    pointer = Path(models_dir) / name / const.MODEL_CURRENT_POINTER
    try:
        version = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ModelError(f"model {name!r}: no current version ({pointer} is missing)") from None
    except OSError as exc:
        raise ModelError(f"model {name!r}: cannot read {pointer}: {exc.strerror}") from None
    if not version:
        raise ModelError(f"model {name!r}: {pointer} is empty")
    return version


def set_current(models_dir: Path, name: str, version: str) -> None:
    """Point ``name`` at ``version`` atomically (readers see the old or the new, never half)."""
    target = Path(models_dir) / name
    if not (target / version / const.MODEL_FILE).is_file():
        raise ModelError(f"model {name!r}: version {version!r} has no {const.MODEL_FILE}")
    tmp = target / f".{const.MODEL_CURRENT_POINTER}.{os.getpid()}.tmp"
    tmp.write_text(version + "\n", encoding="utf-8")
    os.replace(tmp, target / const.MODEL_CURRENT_POINTER)


def load_model(models_dir: Path, name: str, version: str | None = None) -> AnomalyModel:
    import onnxruntime as ort

    models_dir = Path(models_dir)
    version = version or current_version(models_dir, name)
    folder = models_dir / name / version
    meta_path = folder / const.MODEL_META_FILE
    model_path = folder / const.MODEL_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model {name}@{version}: {meta_path} is missing") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"model {name}@{version}: cannot read {meta_path}: {exc}") from None
    missing = [k for k in ("features", "threshold", "asset_type") if k not in meta]
    if missing:
        raise ModelError(f"model {name}@{version}: {meta_path} lacks {', '.join(missing)}")
    opts = ort.SessionOptions()
    # One window at a time: threads only add scheduling overhead to a tiny model.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own, unexported exception types
        raise ModelError(f"model {name}@{version}: cannot load {model_path}: {str(exc).strip()[:300]}") from None
    inputs = session.get_inputs()
    outputs = [o.name for o in session.get_outputs()]
    score_output = "scores" if "scores" in outputs else outputs[-1]
    n_features = inputs[0].shape[-1] if inputs and inputs[0].shape else None
    if isinstance(n_features, int) and n_features != len(meta["features"]):
        raise ModelError(
            f"model {name}@{version}: model.onnx takes {n_features} features, meta.json lists {len(meta['features'])}"
        )
    threshold = float(meta["threshold"])
    return AnomalyModel(
        name=name, version=str(meta.get("version", version)), asset_type=str(meta["asset_type"]),
        features=list(meta["features"]), threshold=threshold,
        critical_threshold=float(meta.get("critical_threshold", threshold + 0.1)),
        consecutive=max(1, int(meta.get("consecutive", 1))),
        session=session, input_name=inputs[0].name, score_output=score_output,
    )


class ModelSlot:
    """Holds the model in use for one name; ``swap`` replaces it atomically."""

    def __init__(self, model: AnomalyModel) -> None:
        self._model = model
        self._lock = threading.Lock()

    @property
    def model(self) -> AnomalyModel:
        return self._model

    def swap(self, new: AnomalyModel) -> AnomalyModel:
        with self._lock:
            old, self._model = self._model, new
        log.info("model %s: switched %s -> %s", new.name, old.version, new.version)
        return old
