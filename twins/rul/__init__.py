"""Remaining-useful-life models: train on run-to-failure histories, export to ONNX, serve.

Pure Python (numpy, LightGBM, onnxmltools, onnxruntime); imports no Django.
"""

from __future__ import annotations

from .artifact import ModelArtifactError, export_onnx, save_model
from .cmapss import CmapssFormatError, load_cmapss, read_cmapss_truth, write_cmapss
from .data import RunToFailureData, split_units
from .evaluate import score_cmapss_test, score_histories, truncate_units
from .features import FeatureSpec, histories_features, window_features
from .health import degradation_rate, health_index
from .metrics import coverage, phm_score, rmse
from .predictor import RulBatch, RulEstimate, RulPredictor, load_model
from .tabular import HistoryFormatError, load_history_csv
from .train import TrainedRul, train_rul

__all__ = [
    "CmapssFormatError",
    "FeatureSpec",
    "HistoryFormatError",
    "ModelArtifactError",
    "RulBatch",
    "RulEstimate",
    "RulPredictor",
    "RunToFailureData",
    "TrainedRul",
    "coverage",
    "degradation_rate",
    "export_onnx",
    "health_index",
    "histories_features",
    "load_cmapss",
    "load_history_csv",
    "load_model",
    "phm_score",
    "read_cmapss_truth",
    "rmse",
    "save_model",
    "score_cmapss_test",
    "score_histories",
    "split_units",
    "train_rul",
    "truncate_units",
    "window_features",
    "write_cmapss",
]
