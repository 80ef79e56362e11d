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
    model.doc_string = "RUL point prediction from windowed features; see meta.json"
    return model.SerializeToString()


def predict(estimator: lgb.LGBMRegressor, features: np.ndarray) -> np.ndarray:
    return estimator.predict(np.asarray(features, dtype=np.float32))
