"""Scoring a model the standard C-MAPSS test way: one prediction at the last cycle of each unit."""

from __future__ import annotations

from os import PathLike

import numpy as np

from . import const
from .cmapss import CmapssFormatError, load_cmapss, read_cmapss_truth
from .data import RunToFailureData
from .metrics import summarise
from .predictor import RulPredictor, load_model


def unit_histories(
    data: RunToFailureData, signals: tuple[str, ...]
) -> list[np.ndarray]:
    values = data.select_signals(signals)
    return [values[start:stop] for start, stop in data.unit_bounds()]


def score_histories(
    model: RulPredictor,
    data: RunToFailureData,
    true_rul: np.ndarray,
    cap_truth: bool = False,
) -> dict:
    """Metrics of the prediction at each unit's last row against its true RUL (unit order)."""
    batch = model.predict_many(unit_histories(data, model.signals))
    true = (
        np.minimum(true_rul, model.cap)
        if cap_truth
        else np.asarray(true_rul, dtype=np.float64)
    )
    return summarise(batch.median, batch.low80, batch.high80, true, len(true))


def score_cmapss_test(
    model: RulPredictor | str | PathLike[str],
    test_path: str | PathLike[str],
    truth_path: str | PathLike[str],
    cap_truth: bool = False,
) -> dict:
    """{"rmse", "phm_score", "coverage80", "engines", "interval_width_mean"} on a C-MAPSS test file and its RUL file.

    The truth is used as given (one number per line, in unit order); ``cap_truth`` caps it at
    the model's cap as many papers do. Malformed files raise ``CmapssFormatError`` naming the line.
    """
    predictor = model if isinstance(model, RulPredictor) else load_model(model)
    data = load_cmapss(test_path)
    truth = read_cmapss_truth(truth_path)
    if len(truth) != len(data.unit_ids):
        raise CmapssFormatError(
            truth_path,
            None,
            f"{len(truth)} true RUL values for {len(data.unit_ids)} units in {test_path}",
        )
    return score_histories(predictor, data, truth, cap_truth)


def truncate_units(
    data: RunToFailureData, seed: int, min_rows: int = const.MIN_TRUNCATED_ROWS
) -> tuple[RunToFailureData, np.ndarray]:
    """Cut every run-to-failure unit at a random row (keeping >= ``min_rows``), like the official
    test set. Returns the truncated histories and each unit's true (uncapped) RUL, in unit order."""
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(data), dtype=bool)
    truth = []
    for start, stop in data.unit_bounds():
        rows = int(rng.integers(min(min_rows, stop - start), stop - start + 1))
        keep[start : start + rows] = True
        truth.append(data.time[stop - 1] - data.time[start + rows - 1])
    cut = RunToFailureData(
        data.units[keep],
        data.time[keep],
        data.values[keep],
        data.signals,
        data.description,
    )
    return cut, np.asarray(truth)
