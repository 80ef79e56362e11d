"""Training a RUL model from run-to-failure histories, validated the way the test set is made."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import const
from .booster import RulBooster, describe, make_booster
from .conformal import NormalisedBands, calibrate_normalised
from .data import RunToFailureData
from .features import FeatureSpec, rows_features
from .protocol import run_protocol
from .regimes import Regimes, find_regimes

log = logging.getLogger(__name__)


@dataclass
class TrainedRul:
    """A fitted model with everything needed to serve it and the evidence of how good it is."""

    estimator: RulBooster
    spec: FeatureSpec
    bands: NormalisedBands
    cap: float
    validation: dict
    split: dict[str, list]
    training: dict = field(default_factory=dict)

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """LightGBM point prediction from a feature matrix (the reference for ONNX)."""
        return self.estimator.predict(np.asarray(features, dtype=np.float32))


def choose_signals(data: RunToFailureData, rul_capped: np.ndarray) -> list[str]:
    """Signals that can carry degradation: not (near-)constant and correlated with the RUL."""
    keep = []
    for j, name in enumerate(data.signals):
        x = data.values[:, j]
        if len(np.unique(x)) <= const.MAX_DISTINCT_FOR_CONSTANT or np.std(x) == 0:
            log.info("dropping signal %s: (near-)constant", name)
            continue
        corr = np.corrcoef(x, rul_capped)[0, 1] if np.std(rul_capped) > 0 else 0.0
        if not np.isfinite(corr) or abs(corr) < const.MIN_ABS_CORRELATION:
            log.info(
                "dropping signal %s: |corr| with RUL %.3f",
                name,
                abs(corr) if np.isfinite(corr) else 0.0,
            )
            continue
        keep.append(name)
    if not keep:
        raise ValueError(
            "no usable signal: every signal is constant or uncorrelated with the remaining life"
        )
    return keep


def fit_spec(
    data: RunToFailureData, signals: Sequence[str], window: int, regimes: Regimes | None = None
) -> FeatureSpec:
    """Per-signal means and scales of the training rows (per regime when there are regimes)."""
    values = data.select_signals(signals)
    if regimes is None:
        scales = values.std(axis=0)
        return FeatureSpec(tuple(signals), values.mean(axis=0), np.where(scales > 0, scales, 1.0), window)
    regime = regimes.assign(data.select_signals(regimes.signals))
    means = np.empty((regimes.count, len(signals)))
    scales = np.ones((regimes.count, len(signals)))
    for r in range(regimes.count):
        rows = values[regime == r]
        if len(rows) == 0:
            means[r] = values.mean(axis=0)
            continue
        means[r] = rows.mean(axis=0)
        sd = rows.std(axis=0)
        scales[r] = np.where(sd > 0, sd, 1.0)
    return FeatureSpec(tuple(signals), means, scales, window, regimes=regimes)


def detect_regimes(data: RunToFailureData, regime_signals: Sequence[str] | None, seed: int) -> Regimes | None:
    """The operating regimes of ``regime_signals`` (default: the signals named setting_*), if any."""
    names = (
        [s for s in data.signals if s.startswith(const.REGIME_SIGNAL_PREFIX)]
        if regime_signals is None else list(regime_signals)
    )
    if not names:
        return None
    regimes = find_regimes(data.select_signals(names), tuple(names), seed)
    if regimes is not None:
        log.info("%d operating regimes in %s: sensors standardised per regime", regimes.count, names)
    return regimes


def fit_predict(n_estimators: int, late_weight: float = const.LATE_WEIGHT):
    """fit_predict(train X, train y, X to predict, seed) for the validation protocol."""

    def run(x: np.ndarray, y: np.ndarray, x_new: np.ndarray, seed: int) -> np.ndarray:
        if len(x_new) == 0:
            return np.empty(0)
        return make_booster(n_estimators, seed, late_weight).fit(x, y).predict(x_new)

    return run


def train_rul(
    histories: RunToFailureData,
    *,
    signals: Sequence[str] | None = None,
    window: int = const.DEFAULT_WINDOW,
    cap: float = const.DEFAULT_CAP,
    seed: int = const.DEFAULT_SEED,
    n_estimators: int = const.N_ESTIMATORS,
    protocol_seeds: int = const.PROTOCOL_SEEDS,
    protocol_folds: int = const.PROTOCOL_FOLDS,
    protocol_cuts: int = const.PROTOCOL_CUTS,
    regime_signals: Sequence[str] | None = None,
    coverage: float = const.INTERVAL_COVERAGE,
    late_weight: float = const.LATE_WEIGHT,
) -> TrainedRul:
    """Fit LightGBM on windowed features of every unit, with a normalised conformal 80% interval.

    The evidence comes from the validation protocol (``protocol.py``): ``protocol_seeds`` repeats
    of a ``protocol_folds``-fold split grouped by unit, each held-out unit cut ``protocol_cuts``
    times like a test engine; the figures are the mean and sd over the repeats. The served
    interval is calibrated on all those out-of-fold cuts; the served model is then fitted on
    every unit. ``signals`` defaults to an automatic choice (see ``choose_signals``);
    ``regime_signals`` (default: signals named setting_*) are clustered into operating regimes,
    and with more than one regime the sensors are standardised per regime (the settings become
    inputs of the model, not features). ``late_weight``: how much heavier late predictions
    weigh in the loss (``booster.AsymmetricSquaredError``).
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    if len(histories.unit_ids) < 2:
        raise ValueError("need at least 2 run-to-failure units to validate a model")
    regimes = detect_regimes(histories, regime_signals, seed)
    target = np.minimum(histories.rul(), cap)
    excluded = set(regimes.signals) if regimes else set()
    if signals is not None:
        chosen = [s for s in signals if s not in excluded]
    else:
        candidates = RunToFailureData(
            histories.units, histories.time,
            histories.select_signals([s for s in histories.signals if s not in excluded]),
            tuple(s for s in histories.signals if s not in excluded), histories.description,
        ) if excluded else histories
        chosen = choose_signals(candidates, target)
    spec = fit_spec(histories, chosen, window, regimes)
    features = rows_features(spec, histories.select_signals(spec.inputs), histories.unit_bounds())

    seeds = [seed + i for i in range(max(1, protocol_seeds))]
    result = run_protocol(
        histories, features, target, fit_predict(n_estimators, late_weight), cap,
        seeds=seeds, folds=protocol_folds, cuts=protocol_cuts, coverage_level=coverage,
    )
    bands = calibrate_normalised(
        result.cut_predicted, result.cut_true, coverage, const.CONFORMAL_OFFSET_SHARE * cap
    )
    estimator = make_booster(n_estimators, seed, late_weight).fit(features, target)

    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    log.info("trained RUL model in %.1f s: %s", seconds, result.summary)
    validation = {
        "test_style": {k: result.summary[k] for k in (
            "rmse", "phm_score", "coverage80", "interval_width_mean", "engines",
        )},
        "protocol": result.summary,
        "per_seed": result.per_seed,
        "truth": "uncapped true RUL at test-like cuts of units the model never saw",
    }
    return TrainedRul(
        estimator=estimator,
        spec=spec,
        bands=bands,
        cap=cap,
        validation=validation,
        split={"fit": histories.unit_ids.tolist(), "protocol_folds": result.folds},
        training={
            "description": histories.description,
            "units": len(histories.unit_ids),
            "rows": len(histories),
            "seed": seed,
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu_seconds, 2),
            "model": describe(n_estimators, late_weight),
            "interval": (
                "normalised conformal (width grows with the predicted RUL), calibrated on "
                f"{len(result.cut_true)} out-of-fold test-like cuts"
            ),
            "regimes": regimes.count if regimes else 1,
            "all_signals": list(histories.signals),
        },
    )
