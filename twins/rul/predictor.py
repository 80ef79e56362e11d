"""Serving a RUL model: numpy features -> onnxruntime -> median, 80% interval, health."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike

import numpy as np
import onnxruntime as ort

from . import const
from .artifact import read_artifact
from .conformal import bands_from_json
from .features import (
    FeatureSpec,
    History,
    features_at,
    histories_features,
    stack_histories,
)
from .health import degradation_rate, health_index


@dataclass(frozen=True)
class RulEstimate:
    """One asset's remaining useful life (in rows: cycles or samples) and health."""

    median: float
    low80: float
    high80: float
    health: float


@dataclass(frozen=True)
class RulBatch:
    """Estimates of many assets, as arrays in input order."""

    median: np.ndarray
    low80: np.ndarray
    high80: np.ndarray
    health: np.ndarray
    degradation_rate: np.ndarray | None = (
        None  # health lost per row; only from ``assess_many``
    )

    def __len__(self) -> int:
        return len(self.median)

    def __getitem__(self, i: int) -> RulEstimate:
        return RulEstimate(
            float(self.median[i]),
            float(self.low80[i]),
            float(self.high80[i]),
            float(self.health[i]),
        )


class RulPredictor:
    """An exported RUL model ready to serve (onnxruntime, one thread: many run side by side)."""

    def __init__(self, onnx_bytes: bytes, meta: dict) -> None:
        self.meta = meta
        self.spec = FeatureSpec.from_json(meta["features"])
        self.bands = bands_from_json(meta["conformal"])
        self.cap = float(meta["cap"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            onnx_bytes, options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        # A preallocated single-row input spares an allocation per single-asset prediction.
        self._one = np.zeros((1, self.spec.n_features), dtype=np.float32)
        self._one_lock = threading.Lock()

    @property
    def version(self) -> str:
        return str(self.meta["version"])

    @property
    def signals(self) -> tuple[str, ...]:
        """The signals a history must carry (with regimes: the settings too)."""
        return self.spec.inputs

    @property
    def window(self) -> int:
        return self.spec.window

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """Raw model output (unclipped point RUL) for a float32 [N, F] feature matrix."""
        x = np.ascontiguousarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.spec.n_features:
            raise ValueError(
                f"features must be [N, {self.spec.n_features}], got {x.shape}"
            )
        return self.session.run(None, {self.input_name: x})[0].reshape(-1)

    def estimate_from_points(self, point: np.ndarray) -> RulBatch:
        median = np.clip(point.astype(np.float64), 0.0, self.cap)
        low, high = self.bands.interval(median)
        return RulBatch(
            median=median,
            # The high end may pass the cap: a cut engine's true RUL can (7..145 cycles at a
            # cap of 125), and the interval is calibrated against the uncapped truth.
            low80=np.maximum(low, 0.0),
            high80=np.maximum(high, 0.0),
            health=health_index(median, self.cap),
        )

    def predict(self, history: History) -> RulEstimate:
        """RUL of one asset from its recent history (dict signal -> values, or [rows, S] array).

        Pass at least ``window`` rows; the last row is the latest.
        """
        features = histories_features(self.spec, [history])
        with (
            self._one_lock
        ):  # the preallocated row is shared by threads serving requests
            self._one[:] = features
            point = self.session.run(None, {self.input_name: self._one})[0].reshape(-1)
        return self.estimate_from_points(point)[0]

    def predict_many(self, histories: Sequence[History] | np.ndarray) -> RulBatch:
        """RUL of many assets: one batch feature extraction and one onnxruntime call."""
        if len(histories) == 0:
            empty = np.empty(0)
            return RulBatch(empty, empty, empty, empty)
        return self.estimate_from_points(
            self.predict_features(histories_features(self.spec, histories))
        )

    def assess_many(
        self,
        histories: Sequence[History] | np.ndarray,
        rate_points: int = const.RATE_POINTS,
        rate_stride: int = const.RATE_STRIDE,
    ) -> RulBatch:
        """RUL, health and degradation rate of many assets (the pure part of a twin refresh).

        The rate is the slope of health over the latest row and ``rate_points - 1`` earlier rows
        ``rate_stride`` apart (health per row; positive = degrading); pass ``window +
        (rate_points - 1) * rate_stride`` rows per asset for a full estimate.
        """
        if len(histories) == 0:
            empty = np.empty(0)
            return RulBatch(empty, empty, empty, empty, empty)
        offsets = np.arange(rate_points) * rate_stride
        block, lengths = stack_histories(
            self.spec, histories, self.spec.window + int(offsets[-1])
        )
        features = np.vstack(
            [features_at(self.spec, block, lengths, int(o)) for o in offsets]
        )
        points = self.predict_features(features).reshape(len(offsets), -1)
        latest = self.estimate_from_points(points[0])
        health = health_index(np.clip(points, 0.0, self.cap), self.cap)
        rate = degradation_rate(
            health, offsets, valid=lengths[None, :] > offsets[:, None]
        )
        return RulBatch(latest.median, latest.low80, latest.high80, latest.health, rate)


def load_model(path: str | PathLike[str]) -> RulPredictor:
    """Load a model directory written by ``save_model`` (checks meta.json against model.onnx)."""
    onnx_bytes, meta = read_artifact(path)
    return RulPredictor(onnx_bytes, meta)
