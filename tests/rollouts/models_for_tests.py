"""Small real ONNX models for the rollout tests: an IsolationForest anomaly model (the agent's
kind, exported with the agent's own exporter) and a tiny MLP (MatMul) that quantizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FEATURES = ["vib_rms", "temperature_c", "current_a"]


def training_rows(seed: int = 0, n: int = 400) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, (n, len(FEATURES))).astype(np.float32)


def write_anomaly_model(out: Path, name: str, version: str, *, seed: int = 0, n_estimators: int = 20,
                        threshold: float | None = None) -> Path:
    """models/<name>/<version>/{model.onnx, meta.json}; ``threshold`` overrides the calibrated one
    (a very low one makes the model call everything anomalous: it disagrees with a sane one)."""
    from sklearn.ensemble import IsolationForest

    from edge_node.agent.iforest_onnx import isolation_forest_to_onnx

    x = training_rows(seed)
    model = IsolationForest(n_estimators=n_estimators, random_state=seed).fit(x)
    onx = isolation_forest_to_onnx(model, len(FEATURES))
    folder = Path(out) / name / version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(onx.SerializeToString())
    calibrated = float(np.quantile(-model.decision_function(x), 0.999))
    meta = {"name": name, "version": version, "asset_type": "induction_motor", "features": FEATURES,
            "threshold": calibrated if threshold is None else threshold, "consecutive": 2}
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder


def mlp_onnx(width: int = 64, seed: int = 0) -> bytes:
    """X[?, width] -> Y[?, 1] through two dense layers (MatMul): dynamic int8 shrinks it."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.normal(0, 0.2, (width, width)).astype(np.float32), "W1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.2, (width, 1)).astype(np.float32), "W2")
    nodes = [helper.make_node("MatMul", ["X", "W1"], ["H"]), helper.make_node("Relu", ["H"], ["R"]),
             helper.make_node("MatMul", ["R", "W2"], ["Y"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, width])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])], [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()
