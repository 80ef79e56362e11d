"""Training a RUL model from run-to-failure histories, validated on held-out units."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from . import const
from .conformal import ConformalBands, calibrate
from .data import RunToFailureData, split_units
from .features import FeatureSpec, rows_features
from .metrics import phm_score, summarise

log = logging.getLogger(__name__)


@dataclass
class TrainedRul:
    """A fitted model with everything needed to serve it and the evidence of how good it is."""

    estimator: RandomForestRegressor
    spec: FeatureSpec
    bands: ConformalBands
    cap: float
    validation: dict
    split: dict[str, list]
    training: dict = field(default_factory=dict)

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """scikit-learn point prediction from a feature matrix (the reference for ONNX)."""
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
    data: RunToFailureData, signals: Sequence[str], window: int
) -> FeatureSpec:
    values = data.select_signals(signals)
    scales = values.std(axis=0)
    return FeatureSpec(
        tuple(signals), values.mean(axis=0), np.where(scales > 0, scales, 1.0), window
    )


def mature_rows(data: RunToFailureData) -> np.ndarray:
    """Mask of rows with at least MIN_TRUNCATED_ROWS rows of history (all rows of shorter units)."""
    mask = np.zeros(len(data), dtype=bool)
    for start, stop in data.unit_bounds():
        mask[start + min(const.MIN_TRUNCATED_ROWS, stop - start) - 1 : stop] = True
    return mask


def test_style_rows(
    data: RunToFailureData, seed: int, repeats: int = const.TRUNCATION_REPEATS
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices where each unit is cut at a random row (>= MIN_TRUNCATED_ROWS kept), ``repeats`` times.

    Features only look back, so a prediction at the cut row equals one on the truncated history.
    Returns (row indices, repeat number of each).
    """
    rng = np.random.default_rng(seed)
    rows, reps = [], []
    for rep in range(repeats):
        for start, stop in data.unit_bounds():
            first = min(const.MIN_TRUNCATED_ROWS, stop - start)
            rows.append(start + int(rng.integers(first, stop - start + 1)) - 1)
            reps.append(rep)
    return np.asarray(rows), np.asarray(reps)


def train_rul(
    histories: RunToFailureData,
    *,
    signals: Sequence[str] | None = None,
    window: int = const.DEFAULT_WINDOW,
    cap: float = const.DEFAULT_CAP,
    seed: int = const.DEFAULT_SEED,
    n_estimators: int = const.N_ESTIMATORS,
    calibration_fraction: float = const.CALIBRATION_FRACTION,
    validation_fraction: float = const.VALIDATION_FRACTION,
    coverage: float = const.INTERVAL_COVERAGE,
) -> TrainedRul:
    """Fit a random forest on windowed features of part of the units.

    The units (never rows) are split three ways: the model is fitted on one part, the conformal
    interval calibrated on a second, and the result validated on the third, both at every row
    and the standard test way (each unit cut at a random row, predicting at the cut).
    ``signals`` defaults to an automatic choice (see ``choose_signals``).
    """
    started = time.perf_counter()
    val_units, cal_units, fit_units = split_units(
        histories.unit_ids, [validation_fraction, calibration_fraction], seed
    )
    fit, cal, val = (
        histories.select_units(u) for u in (fit_units, cal_units, val_units)
    )
    fit_target = np.minimum(fit.rul(), cap)
    chosen = list(signals) if signals is not None else choose_signals(fit, fit_target)
    spec = fit_spec(fit, chosen, window)

    estimator = RandomForestRegressor(
        n_estimators=n_estimators,
        min_samples_leaf=const.MIN_SAMPLES_LEAF,
        max_features=const.MAX_FEATURES,
        random_state=seed,
        n_jobs=1,
    )
    estimator.fit(
        rows_features(spec, fit.select_signals(chosen), fit.unit_bounds()), fit_target
    )

    # Calibrate where the model serves: histories at least as long as a test-style cut. The first
    # rows of a unit are trivially healthy and would make the interval too narrow elsewhere.
    cal_rows = mature_rows(cal)
    cal_pred = estimator.predict(
        rows_features(spec, cal.select_signals(chosen), cal.unit_bounds())
    )
    bands = calibrate(
        cal_pred[cal_rows],
        np.minimum(cal.rul(), cap)[cal_rows],
        coverage,
        const.CONFORMAL_BINS,
    )

    validation = validate(estimator, spec, bands, val, cap, seed)
    seconds = time.perf_counter() - started
    log.info("trained RUL model in %.1f s: %s", seconds, validation["test_style"])
    return TrainedRul(
        estimator=estimator,
        spec=spec,
        bands=bands,
        cap=cap,
        validation=validation,
        split={
            "fit": fit_units.tolist(),
            "calibration": cal_units.tolist(),
            "validation": val_units.tolist(),
        },
        training={
            "description": histories.description,
            "units": len(histories.unit_ids),
            "rows": len(histories),
            "seed": seed,
            "seconds": round(seconds, 2),
            "model": f"RandomForestRegressor(n_estimators={n_estimators}, min_samples_leaf="
            f"{const.MIN_SAMPLES_LEAF}, max_features={const.MAX_FEATURES})",
            "all_signals": list(histories.signals),
        },
    )


def validate(
    estimator: RandomForestRegressor,
    spec: FeatureSpec,
    bands: ConformalBands,
    val: RunToFailureData,
    cap: float,
    seed: int,
) -> dict:
    """Metrics on held-out units: at every row, and the test way (random cuts), against capped RUL."""
    pred = np.clip(
        estimator.predict(
            rows_features(spec, val.select_signals(spec.signals), val.unit_bounds())
        ),
        0,
        cap,
    )
    low, high = bands.interval(pred)
    low, high = np.clip(low, 0, cap), np.clip(high, 0, cap)
    true = np.minimum(val.rul(), cap)
    engines = len(val.unit_ids)
    rows = summarise(pred, low, high, true, engines)
    rows["phm_score"] = round(phm_score(pred, true) / len(pred), 4)
    rows["phm_per"] = "row"
    rows["rows"] = len(pred)

    idx, reps = test_style_rows(val, seed)
    repeats = int(reps.max()) + 1
    test = summarise(pred[idx], low[idx], high[idx], true[idx], engines)
    # The PHM score is a sum over test engines: report it per set of engines, like the official test.
    test["phm_score"] = round(phm_score(pred[idx], true[idx]) / repeats, 4)
    test["repeats"] = repeats
    return {"test_style": test, "rows": rows, "truth": f"true RUL capped at {cap:g}"}
