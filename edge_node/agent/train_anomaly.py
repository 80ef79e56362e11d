"""Train an anomaly model on healthy windows and export it to ONNX (platform side).

    python -m edge_node.agent.train_anomaly --asset-type induction_motor --out models

writes ``models/<asset_type>-anomaly/<version>/model.onnx`` and ``meta.json`` and points
``current`` at it. The default exporter is ``iforest_onnx`` (one TreeEnsembleRegressor,
~100x faster per window than skl2onnx's per-tree graph); ``--exporter skl2onnx`` uses
skl2onnx's stock converter. Both are checked against scikit-learn at export. scikit-learn,
skl2onnx and onnx are imported only inside the functions: the running agent never imports
them (a gateway does not install them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import const
from .asset_types import ASSET_TYPES
from .models import set_current
from .sources import make_source
from .sources.cmapss import default_cmapss_path, load_cmapss

# Metrics left out of a model's input: counters and context that say nothing about health.
EXCLUDED_FEATURES = {"turbofan": {"cycle"}}
# Sim seconds of healthy operation each training seed covers: several periods of the
# asset's load cycle (motor 1.5 h, pump 1 h, HVAC one day), so the model sees all of it.
HEALTHY_HORIZON_S = {"induction_motor": 4 * 5400.0, "centrifugal_pump": 4 * 3600.0, "hvac_unit": 2 * 86400.0}


def model_features(asset_type: str) -> list[str]:
    skip = EXCLUDED_FEATURES.get(asset_type, set())
    return [m.name for m in ASSET_TYPES[asset_type]["metrics"] if m.name not in skip]


def healthy_windows(asset_type: str, n_windows: int, seeds: range = range(100, 108),
                    cmapss_path: str | Path | None = None, params: dict[str, Any] | None = None,
                    wear_up_to: float = 0.0) -> np.ndarray:
    """Feature rows of normal operation, from the agent's own sources (no faults); for
    turbofans, the first 30% of every C-MAPSS engine's life. With ``wear_up_to`` > 0 the
    sources are spread over wear levels from 0 to it (the gradual wear a fleet lives with is
    normal; a model trained on new machines only flags every asset past mid-life)."""
    features = model_features(asset_type)
    if asset_type == "turbofan":
        from .sources.cmapss import SENSOR_COLUMNS

        data = load_cmapss(cmapss_path or default_cmapss_path())
        rows = []
        for unit in np.unique(data[:, 0]):
            engine = data[data[:, 0] == unit]
            rows.append(engine[: max(1, int(0.3 * len(engine)))])
        healthy = np.vstack(rows)
        return np.array([[row[SENSOR_COLUMNS[f]] for f in features] for row in healthy], dtype=np.float32)
    per_seed = max(1, n_windows // len(seeds))
    horizon = HEALTHY_HORIZON_S.get(asset_type, 3600.0)
    step = horizon / per_seed
    rows = []
    for k, seed in enumerate(seeds):
        fail_at, age = None, 0.0
        if wear_up_to > 0:
            # A life long against the horizon (wear constant over it), at the age where this seed's
            # wear is its share of wear_up_to (wear = ((age - onset) / (life - onset))^2).
            from .sources import source_class

            life = 1000.0 * horizon
            onset = source_class(asset_type).ONSET_FRACTION * life
            target = wear_up_to * k / max(1, len(seeds) - 1)
            age = onset + (life - onset) * target**0.5
            fail_at = life
        src = make_source(asset_type, f"train-{seed}", seed=seed, params=params, fail_at=fail_at, age_s=age)
        for i in range(per_seed):
            for sample in src.step(i * step):
                rows.append([sample.values[f] for f in features])
    return np.asarray(rows, dtype=np.float32)


def train_anomaly_model(asset_type: str, out_dir: str | Path, *, name: str | None = None,
                        version: str | None = None, n_windows: int = 2000, n_estimators: int = 100,
                        random_state: int = 0, make_current: bool = True,
                        params: dict[str, Any] | None = None, exporter: str = "compact", wear_up_to: float = 0.0) -> Path:
    """Fit an IsolationForest on healthy windows, export it with skl2onnx, check ONNX
    against scikit-learn, write model.onnx + meta.json; return the version folder.
    ``params`` are the source parameters of the fleet the model is for (e.g. a motor's
    ``window_s``: features depend on the window length)."""
    from sklearn.ensemble import IsolationForest

    if asset_type not in ASSET_TYPES:
        raise ValueError(f"unknown asset type {asset_type!r} (known: {', '.join(ASSET_TYPES)})")
    name = name or f"{asset_type}{const.DEFAULT_MODEL_SUFFIX}"
    out_dir = Path(out_dir)
    folder_root = out_dir / name
    if version is None:
        existing = [int(p.name) for p in folder_root.glob("*") if p.is_dir() and p.name.isdigit()]
        version = str(max(existing, default=0) + 1)
    x = healthy_windows(asset_type, n_windows, params=params, wear_up_to=wear_up_to)
    model = IsolationForest(n_estimators=n_estimators, random_state=random_state).fit(x)
    onx = export_onnx(model, x, exporter)
    healthy_scores = -model.decision_function(x)
    # Calibrated on healthy operation: its 99.95th percentile. The agent also asks for
    # ``consecutive`` windows over it, so a lone healthy outlier never alarms while a
    # fault (which persists) does.
    threshold = float(np.quantile(healthy_scores, 0.9995))
    folder = folder_root / version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / const.MODEL_FILE).write_bytes(onx.SerializeToString())
    max_diff = _check_against_sklearn(folder / const.MODEL_FILE, model, x[:256])
    meta: dict[str, Any] = {
        "name": name, "version": version, "asset_type": asset_type, "kind": "isolation_forest", "exporter": exporter,
        "features": model_features(asset_type), "threshold": threshold, "critical_threshold": threshold + 0.1,
        "consecutive": 2,
        "score": "negated IsolationForest.decision_function (higher = more anomalous)",
        "trained_on": len(x), "source_params": params or {}, "n_estimators": n_estimators, "created": time.time(),
        "normal_wear_up_to": wear_up_to,
        "onnx_vs_sklearn_max_abs_diff": max_diff,
    }
    (folder / const.MODEL_META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    if make_current:
        set_current(out_dir, name, version)
    return folder


def export_onnx(model: Any, x: np.ndarray, exporter: str = "compact") -> Any:
    """ONNX ModelProto of a fitted IsolationForest; output ``scores`` = decision_function."""
    if exporter == "compact":
        from .iforest_onnx import isolation_forest_to_onnx

        return isolation_forest_to_onnx(model, x.shape[1])
    if exporter == "skl2onnx":
        from skl2onnx import to_onnx

        return to_onnx(model, x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    raise ValueError(f"unknown exporter {exporter!r} (compact or skl2onnx)")


def _check_against_sklearn(model_path: Path, model: Any, x: np.ndarray) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    onnx_scores = np.ravel(sess.run(["scores"], {sess.get_inputs()[0].name: x})[0])
    diff = float(np.max(np.abs(onnx_scores - model.decision_function(x))))
    if diff > 1e-3:
        raise RuntimeError(f"ONNX export disagrees with scikit-learn by {diff:.2e}")
    return diff


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_node.agent.train_anomaly")
    parser.add_argument("--asset-type", required=True, choices=sorted(ASSET_TYPES))
    parser.add_argument("--out", required=True, help="models directory")
    parser.add_argument("--name", help="model name (default <asset_type>-anomaly)")
    parser.add_argument("--version", help="version (default: next integer)")
    parser.add_argument("--windows", type=int, default=2000, help="healthy windows to train on")
    parser.add_argument("--exporter", default="compact", choices=["compact", "skl2onnx"])
    parser.add_argument("--normal-wear", type=float, default=0.0,
                        help="take wear up to this level (0-1) as normal: a fleet's machines are not all new (0: new only)")
    parser.add_argument("--seed", type=int, default=0, help="the forest's random state")
    args = parser.parse_args(argv)
    if not 0.0 <= args.normal_wear < 1.0:
        parser.error("--normal-wear must be in [0, 1)")
    folder = train_anomaly_model(args.asset_type, args.out, name=args.name, version=args.version,
                                 n_windows=args.windows, exporter=args.exporter, wear_up_to=args.normal_wear, random_state=args.seed)
    meta = json.loads((folder / const.MODEL_META_FILE).read_text())
    print(f"wrote {folder} (threshold {meta['threshold']:.4f}, {meta['trained_on']} healthy windows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
