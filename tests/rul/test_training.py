from __future__ import annotations

import json

import numpy as np

from twins.rul import RunToFailureData, TrainedRul, split_units, train_rul
from twins.rul.features import histories_features, rows_features
from twins.rul.train import out_of_fold_predictions

from .conftest import pump_fleet


def test_it_splits_by_engine_without_leakage(
    trained: TrainedRul, fd001_slice: RunToFailureData
) -> None:
    fit, val = set(trained.split["fit"]), set(trained.split["validation"])
    assert fit and val
    assert not fit & val
    assert fit | val == set(fd001_slice.unit_ids.tolist())
    # the conformal residuals come from folds of whole engines: each engine in exactly one fold
    folds = [set(f) for f in trained.split["folds"]]
    assert len(folds) == 5
    assert sum(len(f) for f in folds) == len(fit)
    assert set().union(*folds) == fit


def test_it_predicts_each_fold_without_its_own_engines(
    trained: TrainedRul, fd001_slice: RunToFailureData
) -> None:
    data = fd001_slice.select_units(trained.split["fit"])
    features = rows_features(
        trained.spec, data.select_signals(trained.spec.signals), data.unit_bounds()
    )
    target = np.minimum(data.rul(), 125)
    folds = [np.asarray(f) for f in trained.split["folds"]]
    before = out_of_fold_predictions(features, target, data.units, folds, 5, seed=1)
    # scrambling the labels of fold 0 cannot change fold 0's predictions, only the others'
    scrambled = target.copy()
    in_fold = np.isin(data.units, folds[0])
    scrambled[in_fold] = np.random.default_rng(0).permutation(scrambled[in_fold])
    after = out_of_fold_predictions(features, scrambled, data.units, folds, 5, seed=1)
    np.testing.assert_array_equal(before[in_fold], after[in_fold])
    assert not np.array_equal(before[~in_fold], after[~in_fold])


def test_it_keeps_split_conformal_units_apart(fd001_slice: RunToFailureData) -> None:
    model = train_rul(fd001_slice, seed=2, n_estimators=10, conformal_folds=0)
    fit, cal, val = (set(model.split[k]) for k in ("fit", "calibration", "validation"))
    assert fit and cal and val
    assert not fit & cal and not fit & val and not cal & val
    assert model.split["folds"] == []
    assert 0 < model.validation["test_style"]["rmse"] < 25


def test_it_split_units_is_reproducible_and_exhaustive() -> None:
    units = np.arange(1, 101)
    a = split_units(units, [0.15, 0.15], seed=3)
    b = split_units(units, [0.15, 0.15], seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert [len(g) for g in a] == [15, 15, 70]
    assert sorted(np.concatenate(a).tolist()) == units.tolist()


def test_it_drops_constant_and_uninformative_signals(trained: TrainedRul) -> None:
    chosen = set(trained.spec.signals)
    # FD001 settings and sensors 1, 5, 10, 16, 18, 19 are constant or pure noise around one condition
    for dead in (
        "setting_3",
        "sensor_1",
        "sensor_5",
        "sensor_10",
        "sensor_16",
        "sensor_18",
        "sensor_19",
    ):
        assert dead not in chosen
    for degrading in ("sensor_2", "sensor_4", "sensor_11", "sensor_15"):
        assert degrading in chosen


def test_it_predicts_remaining_life_on_held_out_engines(trained: TrainedRul) -> None:
    test = trained.validation["test_style"]
    rows = trained.validation["rows"]
    assert test["engines"] == len(trained.split["validation"])
    # a constant guess at the mean capped RUL scores about 40 on FD001; a working model far less
    assert test["rmse"] < 20
    assert rows["rmse"] < 20


def test_it_covers_about_80_percent_of_held_out_truths(fd001: RunToFailureData) -> None:
    # coverage is measured on 30 engines never used for fitting or calibration
    data = fd001.select_units(np.arange(1, 61))
    model = train_rul(data, seed=11, n_estimators=30, validation_fraction=0.5)
    assert abs(model.validation["rows"]["coverage80"] - 0.8) <= 0.10
    assert abs(model.validation["test_style"]["coverage80"] - 0.8) <= 0.10


def test_it_trains_on_generic_named_signals() -> None:
    data = RunToFailureData.from_histories(
        pump_fleet(24), description="synthetic pumps"
    )
    model = train_rul(data, seed=1, n_estimators=20, window=20, cap=100)
    assert set(model.spec.signals) == {"vib_rms", "flow_m3h"}
    assert model.validation["rows"]["rmse"] < 15


def test_it_computes_features_from_past_rows_only(
    fd001_slice: RunToFailureData, trained: TrainedRul
) -> None:
    one = fd001_slice.select_units([1])
    values = one.select_signals(trained.spec.signals)
    full = rows_features(trained.spec, values, one.unit_bounds())
    cut = rows_features(trained.spec, values[:100], [(0, 100)])
    np.testing.assert_allclose(full[:100], cut, rtol=1e-5, atol=1e-5)


def test_it_records_what_and_how_it_trained(trained: TrainedRul) -> None:
    assert trained.training["units"] == 40
    assert "train_FD001.txt" in trained.training["description"]
    json.dumps(trained.split)


def test_it_serves_the_features_it_trained_on(
    fd001_slice: RunToFailureData, trained: TrainedRul
) -> None:
    # training windows every row of a unit at once; serving windows the latest rows of each
    # history: both must give the same features for the same past
    one = fd001_slice.select_units([3])
    values = one.select_signals(trained.spec.signals)
    at_every_row = rows_features(trained.spec, values, one.unit_bounds())
    ends = [1, 2, 7, trained.spec.window - 1, trained.spec.window, 150, len(values)]
    served = histories_features(trained.spec, [values[:end] for end in ends])
    np.testing.assert_allclose(
        served, at_every_row[[e - 1 for e in ends]], rtol=1e-5, atol=1e-5
    )
