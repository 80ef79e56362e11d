"""The regressor: LightGBM gradient-boosted trees, exported to ONNX with onnxmltools."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType

from . import const


def learning_rate(n_estimators: int) -> float:
    """LEARNING_RATE for the full model; fewer rounds (quick demo and test models) take larger
    steps so that they still reach the target (rounds x rate >= MIN_TOTAL_STEP)."""
    return max(const.LEARNING_RATE, const.MIN_TOTAL_STEP / max(n_estimators, 1))


def make_booster(n_estimators: int, seed: int) -> lgb.LGBMRegressor:
    """LightGBM on one thread (helpers and the platform share the cores); deterministic per seed."""
    return lgb.LGBMRegressor(
        n_estimators=n_estimators,
        learning_rate=learning_rate(n_estimators),
        num_leaves=const.NUM_LEAVES,
        min_child_samples=const.MIN_CHILD_SAMPLES,
        subsample=const.SUBSAMPLE,
        subsample_freq=1,
        colsample_bytree=const.COLSAMPLE,
        random_state=seed,
        n_jobs=1,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )


def describe(n_estimators: int) -> str:
    return (
        f"LightGBM LGBMRegressor(n_estimators={n_estimators}, learning_rate={learning_rate(n_estimators):g}, "
        f"num_leaves={const.NUM_LEAVES}, min_child_samples={const.MIN_CHILD_SAMPLES}, "
        f"subsample={const.SUBSAMPLE}, colsample_bytree={const.COLSAMPLE})"
    )


def booster_to_onnx(estimator: lgb.LGBMRegressor, n_features: int) -> bytes:
    """Input ``features`` float32 [N, F], output the RUL [N, 1]."""
    model = convert_lightgbm(
        estimator,
        initial_types=[(const.ONNX_INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=const.ONNX_OPSET,
        zipmap=False,
    )
    exact_float32_thresholds(model, estimator)
    model.doc_string = "RUL point prediction from windowed features; see meta.json"
    return model.SerializeToString()


def _thresholds(tree: dict, out: list[float]) -> None:
    if "split_index" in tree:
        out.append(float(tree["threshold"]))
        _thresholds(tree["left_child"], out)
        _thresholds(tree["right_child"], out)


def exact_float32_thresholds(model, estimator: lgb.LGBMRegressor) -> int:
    """Make the ONNX splits decide like LightGBM's for every float32 input.

    LightGBM compares ``x <= t`` with a double ``t``; ONNX stores ``t`` as float32, rounded to
    nearest. When it rounds up, an input equal to the rounded value goes left in ONNX and right
    in LightGBM (differences of up to about a cycle). For float32 ``x``, ``x <= t`` is
    ``x <= the largest float32 <= t``: each threshold rounded up is moved down one float32 step.
    Returns the number of thresholds moved.
    """
    doubles: list[float] = []
    for info in estimator.booster_.dump_model()["tree_info"]:
        _thresholds(info["tree_structure"], doubles)
    below: dict[float, set[bool]] = {}
    for t in doubles:
        t32 = np.float32(t)
        below.setdefault(float(t32), set()).add(float(t32) > t)
    moved = 0
    for node in model.graph.node:
        if node.op_type != "TreeEnsembleRegressor":
            continue
        attrs = {a.name: a for a in node.attribute}
        modes, values = attrs["nodes_modes"].strings, attrs["nodes_values"].floats
        for i, (mode, value) in enumerate(zip(modes, values)):
            # rounded up, and no other threshold shares the float32 value from the other side
            if mode == b"BRANCH_LEQ" and below.get(float(np.float32(value))) == {True}:
                values[i] = float(np.nextafter(np.float32(value), np.float32(-np.inf)))
                moved += 1
    return moved


def predict(estimator: lgb.LGBMRegressor, features: np.ndarray) -> np.ndarray:
    return estimator.predict(np.asarray(features, dtype=np.float32))
