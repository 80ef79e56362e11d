"""The regressor: LightGBM gradient-boosted trees on an asymmetric squared error, exported to
ONNX with onnxmltools."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
from onnx import helper
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType

from . import const


def learning_rate(n_estimators: int) -> float:
    """LEARNING_RATE for the full model; fewer rounds (quick demo and test models) take larger
    steps so that they still reach the target (rounds x rate >= MIN_TOTAL_STEP)."""
    return max(const.LEARNING_RATE, const.MIN_TOTAL_STEP / max(n_estimators, 1))


class AsymmetricSquaredError:
    """LightGBM objective: squared error, ``late_weight`` times heavier where the prediction is
    late (above the truth). The PHM08 score punishes late predictions more than early ones
    (exp(d / 10) against exp(-d / 13)); a model trained on the plain squared error is late by
    4-5 cycles where the truth is 50..100 cycles at test-like cuts."""

    def __init__(self, late_weight: float) -> None:
        self.late_weight = float(late_weight)

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = y_pred - y_true
        weight = np.where(d > 0, self.late_weight, 1.0)
        return weight * d, weight  # gradient and hessian of weight * d**2 / 2


class RulBooster:
    """LightGBM on the asymmetric squared error, boosted from the mean target (a custom
    objective does not start from it by itself): ``predict`` = trees + ``base``."""

    def __init__(self, n_estimators: int, seed: int, late_weight: float = const.LATE_WEIGHT) -> None:
        self.model = _regressor(n_estimators, seed, AsymmetricSquaredError(late_weight))
        self.late_weight = float(late_weight)
        self.base = 0.0

    def fit(self, x: np.ndarray, y: np.ndarray) -> RulBooster:
        self.base = float(np.mean(y))
        self.model.fit(x, y, init_score=np.full(len(y), self.base))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(np.asarray(x, dtype=np.float32)) + self.base

    @property
    def booster_(self) -> lgb.Booster:
        return self.model.booster_


def make_booster(n_estimators: int, seed: int, late_weight: float = const.LATE_WEIGHT) -> RulBooster:
    """LightGBM on one thread (helpers and the platform share the cores); deterministic per seed."""
    return RulBooster(n_estimators, seed, late_weight)


def _regressor(n_estimators: int, seed: int, objective) -> lgb.LGBMRegressor:
    return lgb.LGBMRegressor(
        objective=objective,
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


def describe(n_estimators: int, late_weight: float = const.LATE_WEIGHT) -> str:
    return (
        f"LightGBM LGBMRegressor(n_estimators={n_estimators}, learning_rate={learning_rate(n_estimators):g}, "
        f"num_leaves={const.NUM_LEAVES}, min_child_samples={const.MIN_CHILD_SAMPLES}, "
        f"subsample={const.SUBSAMPLE}, colsample_bytree={const.COLSAMPLE}), squared error with late "
        f"predictions weighted x{late_weight:g}, from the mean target"
    )


def booster_to_onnx(estimator: RulBooster, n_features: int) -> bytes:
    """Input ``features`` float32 [N, F], output the RUL [N, 1] (trees + the base)."""
    # onnxmltools converts by objective name, and a custom objective writes none: its trees add
    # up like a regression's, so the model is reloaded named as one
    text = estimator.booster_.model_to_string()
    head, sep, rest = text.partition("\nfeature_names=")
    if not sep or "\nobjective=" in head:
        raise ValueError("expected a LightGBM model of a custom objective")
    rest = rest.replace("\n[objective: custom]\n", "\n[objective: regression]\n")
    booster = lgb.Booster(model_str=head + "\nobjective=regression" + sep + rest)
    model = convert_lightgbm(
        booster,
        initial_types=[(const.ONNX_INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=const.ONNX_OPSET,
        zipmap=False,
    )
    exact_float32_thresholds(model, estimator)
    add_base_value(model, estimator.base)
    model.doc_string = "RUL point prediction from windowed features; see meta.json"
    return model.SerializeToString()


def add_base_value(model, base: float) -> None:
    """Add ``base`` to the tree ensemble's output (its ``base_values``)."""
    for node in model.graph.node:
        if node.op_type != "TreeEnsembleRegressor":
            continue
        for attr in node.attribute:
            if attr.name == "base_values":
                attr.floats[:] = [v + base for v in attr.floats]
                return
        node.attribute.append(helper.make_attribute("base_values", [float(base)]))
        return
    raise ValueError("no TreeEnsembleRegressor in the converted model")


def _thresholds(tree: dict, out: list[float]) -> None:
    if "split_index" in tree:
        out.append(float(tree["threshold"]))
        _thresholds(tree["left_child"], out)
        _thresholds(tree["right_child"], out)


def exact_float32_thresholds(model, estimator: RulBooster) -> int:
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


def predict(estimator: RulBooster, features: np.ndarray) -> np.ndarray:
    return estimator.predict(np.asarray(features, dtype=np.float32))
