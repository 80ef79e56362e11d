from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from twins.rul import (
    ModelArtifactError,
    RulPredictor,
    RunToFailureData,
    TrainedRul,
    degradation_rate,
    health_index,
    histories_features,
    load_model,
)
from twins.rul.features import rows_features


def unit_values(
    data: RunToFailureData, unit: int, signals: tuple[str, ...]
) -> np.ndarray:
    return data.select_units([unit]).select_signals(signals)


def test_it_writes_a_complete_artifact(model_dir: Path, trained: TrainedRul) -> None:
    meta = json.loads((model_dir / "meta.json").read_text())
    assert (model_dir / "model.onnx").stat().st_size > 0
    assert meta["signals"] == list(trained.spec.signals)
    assert len(meta["feature_names"]) == trained.spec.n_features
    assert meta["window"] == trained.spec.window and meta["cap"] == trained.cap
    # the figures shown next to every estimate: the protocol's means, with their spread
    assert set(meta["metrics"]) >= {
        "rmse", "rmse_sd", "phm_score", "phm_score_sd", "coverage80", "coverage80_sd",
        "interval_width_mean", "interval_width_mean_sd", "engines", "seeds",
    }
    assert meta["metrics"]["rmse"] == trained.validation["protocol"]["rmse"]
    assert meta["conformal"]["method"] == "normalised" and meta["scaler"]["means"]
    assert meta["version"].endswith(meta["model_sha256"][:12])
    assert meta["created"] and meta["training"]["description"]


def test_it_predicts_the_same_with_onnx_as_with_lightgbm(
    predictor: RulPredictor, trained: TrainedRul, fd001: RunToFailureData
) -> None:
    histories = [
        unit_values(fd001, u, trained.spec.signals)[:n]
        for u in range(41, 101)
        for n in (5, 40, 90)
    ]
    features = histories_features(trained.spec, histories)
    onnx_pred = predictor.predict_features(features)
    sk_pred = trained.predict_features(features)
    np.testing.assert_allclose(onnx_pred, sk_pred, rtol=1e-4, atol=1e-3)
    # every row of every engine: feature values that sit on a split threshold decide alike
    # (float32 thresholds in ONNX, doubles in LightGBM; see booster.exact_float32_thresholds)
    every_row = rows_features(trained.spec, fd001.select_signals(trained.spec.inputs), fd001.unit_bounds())
    np.testing.assert_allclose(
        predictor.predict_features(every_row), trained.predict_features(every_row), rtol=1e-4, atol=1e-3
    )


def test_it_predicts_one_asset_like_a_batch(
    predictor: RulPredictor, fd001: RunToFailureData
) -> None:
    signals = predictor.signals
    histories = [unit_values(fd001, u, signals) for u in (50, 60, 70)]
    batch = predictor.predict_many(histories)
    for i, history in enumerate(histories):
        as_dict = {name: history[:, j] for j, name in enumerate(signals)}
        as_dict["unused_signal"] = np.zeros(len(history))
        one = predictor.predict(as_dict)
        assert one == batch[i]
        assert 0 <= one.low80 <= one.median <= one.high80 <= predictor.cap


def test_it_accepts_a_3d_array_of_histories(
    predictor: RulPredictor, fd001: RunToFailureData
) -> None:
    histories = [unit_values(fd001, u, predictor.signals)[-100:] for u in (45, 46)]
    from_list = predictor.predict_many(histories)
    from_array = predictor.predict_many(np.stack(histories))
    np.testing.assert_array_equal(from_list.median, from_array.median)


def test_it_sees_an_engine_wear_out(
    predictor: RulPredictor, fd001: RunToFailureData
) -> None:
    values = unit_values(fd001, 55, predictor.signals)
    life = len(values)
    ends = list(range(40, life + 1, 10))
    batch = predictor.predict_many([values[:e] for e in ends])
    # monotone-ish: the health trend is downward and it ends much lower than it starts
    assert np.corrcoef(ends, batch.health)[0, 1] < -0.8
    assert batch.health[0] > 0.8 and batch.health[-1] < 0.3
    rises = np.diff(batch.health)
    assert rises.max() < 0.2
    late = predictor.assess_many([values[: life - 5]])
    early = predictor.assess_many([values[:60]])
    assert late.degradation_rate[0] > early.degradation_rate[0]
    assert late.degradation_rate[0] > 0


def test_it_rejects_histories_that_do_not_match_the_model(
    predictor: RulPredictor,
) -> None:
    with pytest.raises(ValueError, match="lacks signals"):
        predictor.predict({"sensor_2": np.ones(50)})
    with pytest.raises(ValueError, match=r"must be \[rows"):
        predictor.predict(np.ones((50, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        predictor.predict(np.full((50, len(predictor.signals)), np.nan))


def test_it_refuses_a_tampered_artifact(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (copy / "model.onnx").write_bytes((copy / "model.onnx").read_bytes()[:-10])
    with pytest.raises(ModelArtifactError, match="sha256"):
        load_model(copy)
    (copy / "meta.json").unlink()
    with pytest.raises(ModelArtifactError, match="missing meta.json"):
        load_model(copy)


def test_it_maps_rul_to_health_and_rate() -> None:
    np.testing.assert_allclose(
        health_index([0, 62.5, 125, 200, -3], 125), [0, 0.5, 1, 1, 0]
    )
    # health falling by 0.01 per row over the last 20 rows
    rows_back = np.array([0, 5, 10, 15, 20])
    health = (0.5 + 0.01 * rows_back)[:, None]
    np.testing.assert_allclose(degradation_rate(health, rows_back), [0.01])
    flat = np.full((5, 1), 0.9)
    np.testing.assert_allclose(degradation_rate(flat, rows_back), [0.0])
