from __future__ import annotations

import json

import numpy as np
import pytest

from twins.rul import RunToFailureData, TrainedRul, phm_score, split_units, train_rul
from twins.rul.booster import make_booster
from twins.rul.features import histories_features, rows_features
from twins.rul.protocol import cut_like_test_set, run_protocol
from twins.rul.regimes import find_regimes, synthetic_multi_regime

from .conftest import SLICE_UNITS, pump_fleet

SETTINGS = ("setting_1", "setting_2", "setting_3")


def test_it_validates_every_engine_with_a_model_that_never_saw_it(
    fd001_slice: RunToFailureData,
) -> None:
    # a model whose only feature is the unit id: every fit records what it trained on
    features = fd001_slice.units.astype(np.float64)[:, None]
    target = np.minimum(fd001_slice.rul(), 125)
    predicted_units: list[int] = []

    def spy(x, y, x_new, seed):
        trained_on, asked = set(x[:, 0].tolist()), set(x_new[:, 0].tolist())
        assert not trained_on & asked
        predicted_units.extend(x_new[:, 0].astype(int).tolist())
        return np.full(len(x_new), 60.0)

    result = run_protocol(fd001_slice, features, target, spy, 125.0, seeds=[0, 1], folds=5, cuts=3)
    # every engine of the slice, 3 cuts, in each of the 2 repeats
    counts = np.bincount(predicted_units)
    assert sorted(set(predicted_units)) == fd001_slice.unit_ids.tolist()
    assert set(counts[fd001_slice.unit_ids]) == {6}
    assert result.summary["seeds"] == 2 and result.summary["engines"] == SLICE_UNITS
    assert [sorted(sum(folds, [])) for folds in result.folds] == [fd001_slice.unit_ids.tolist()] * 2


def test_it_weighs_an_ensemble_on_the_other_folds_only(fd001_slice: RunToFailureData) -> None:
    # two members: one that knows the capped RUL up to noise, one that always says 60
    target = np.minimum(fd001_slice.rul(), 125)
    rows = np.arange(len(fd001_slice))[:, None].astype(np.float64)
    noise = np.random.default_rng(0).normal(0, 8, len(rows))

    def two_members(x, y, x_new, seed):
        at = x_new[:, 0].astype(int)
        return np.column_stack([target[at] + noise[at], np.full(len(at), 60.0)])

    result = run_protocol(fd001_slice, rows, target, two_members, 125.0, seeds=[0, 1], folds=4, cuts=3)
    for seed in result.per_seed:
        assert len(seed["weights"]) == 4
        assert all(w[0] >= 0.8 and abs(sum(w) - 1) < 1e-9 for w in seed["weights"])
        good, constant = seed["members"]
        assert seed["rmse"] < constant["rmse"] and seed["rmse"] <= good["rmse"] * 1.05
    assert result.cut_members.shape == (2 * 3 * SLICE_UNITS, 2)
    assert [m["rmse"] for m in result.summary["members"]][0] < 15


def test_it_cuts_engines_like_the_official_test_set(fd001: RunToFailureData) -> None:
    cuts = cut_like_test_set(fd001, 125.0, seed=4, per_unit=4)
    assert len(cuts) == 4 * len(fd001.unit_ids)
    raw = fd001.rul()[cuts]
    assert raw.min() >= 7 and raw.max() <= 145
    starts = {u: start for u, (start, _stop) in zip(fd001.unit_ids.tolist(), fd001.unit_bounds())}
    kept = cuts - np.array([starts[u] for u in fd001.units[cuts].tolist()]) + 1
    assert kept.min() >= 31
    # random points, not always the same: the cuts spread over the range
    assert raw.std() > 25
    assert not np.array_equal(cuts, cut_like_test_set(fd001, 125.0, seed=5, per_unit=4))


def test_it_reports_the_protocol_figures_with_their_spread(trained: TrainedRul) -> None:
    protocol = trained.validation["protocol"]
    assert protocol["seeds"] == 3 and protocol["folds"] == 5 and protocol["engines"] == SLICE_UNITS
    per_seed = trained.validation["per_seed"]
    rmses = [s["rmse"] for s in per_seed]
    assert protocol["rmse"] == pytest.approx(np.mean(rmses), abs=1e-3)
    assert protocol["rmse_sd"] == pytest.approx(np.std(rmses, ddof=1), abs=1e-3)
    assert protocol["rmse_sd"] > 0
    # a constant guess at the mean RUL scores about 40; a working model far less
    assert protocol["rmse"] < 22
    assert "grouped by unit" in protocol["protocol"]


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


def test_it_covers_about_80_percent_of_unseen_engines_at_their_cut(trained: TrainedRul) -> None:
    # each fold's interval is calibrated on the other folds' cuts only
    for seed in trained.validation["per_seed"]:
        assert 0.7 <= seed["coverage80"] <= 0.9
    assert trained.validation["protocol"]["interval_width_mean"] > 0


def test_it_widens_the_interval_with_the_predicted_life(trained: TrainedRul) -> None:
    low, high = trained.bands.interval(np.array([5.0, 60.0, 120.0]))
    width = high - low
    assert width[0] < width[1] < width[2]
    assert np.all(low <= [5.0, 60.0, 120.0]) and np.all(high >= [5.0, 60.0, 120.0])


def test_it_trains_on_generic_named_signals() -> None:
    data = RunToFailureData.from_histories(
        pump_fleet(24), description="synthetic pumps"
    )
    model = train_rul(data, seed=1, n_estimators=60, window=20, cap=100, protocol_seeds=2)
    assert set(model.spec.signals) == {"vib_rms", "flow_m3h"}
    assert model.validation["protocol"]["rmse"] < 20


def test_it_standardises_sensors_per_operating_regime(fd001: RunToFailureData) -> None:
    # FD001 runs at one operating condition; the synthetic set moves every row to one of the six
    # FD002 operating points, shifting the sensors by up to 8 sd: only per-regime standardisation
    # sees the wear through the jumps
    fleet = synthetic_multi_regime(fd001.select_units(np.arange(1, 31)), seed=0)
    assert find_regimes(fleet.select_signals(SETTINGS), SETTINGS).count == 6
    assert find_regimes(fd001.select_signals(SETTINGS), SETTINGS) is None
    kw = dict(seed=0, n_estimators=60, protocol_seeds=1, window=60)
    per_regime = train_rul(fleet, **kw)
    global_scaling = train_rul(fleet, regime_signals=(), **kw)
    assert per_regime.training["regimes"] == 6 and global_scaling.training["regimes"] == 1
    assert per_regime.spec.inputs[-3:] == SETTINGS and not set(SETTINGS) & set(per_regime.spec.signals)
    assert per_regime.validation["protocol"]["rmse"] < 0.8 * global_scaling.validation["protocol"]["rmse"]
    # the served features see the regime of every row: a history at another operating point
    # mix gives the features of the training rows
    one = fleet.select_units([3])
    values = one.select_signals(per_regime.spec.inputs)
    at_every_row = rows_features(per_regime.spec, values, one.unit_bounds())
    served = histories_features(per_regime.spec, [values[:90]])
    np.testing.assert_allclose(served[0], at_every_row[89], rtol=1e-5, atol=1e-5)


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
    ends = sorted({min(e, len(values)) for e in (1, 2, 7, trained.spec.window - 1, trained.spec.window, 150, len(values))})
    served = histories_features(trained.spec, [values[:end] for end in ends])
    np.testing.assert_allclose(
        served, at_every_row[[e - 1 for e in ends]], rtol=1e-5, atol=1e-5
    )


def test_it_leans_early_when_late_predictions_weigh_more(
    fd001_slice: RunToFailureData, trained: TrainedRul
) -> None:
    # the PHM08 score punishes a late prediction more than an early one: so does the loss
    features = rows_features(trained.spec, fd001_slice.select_signals(trained.spec.inputs), fd001_slice.unit_bounds())
    target = np.minimum(fd001_slice.rul(), 125)
    fit, held = fd001_slice.units <= 30, fd001_slice.units > 30
    plain = make_booster(60, 0, late_weight=1.0).fit(features[fit], target[fit]).predict(features[held])
    early = make_booster(60, 0, late_weight=3.0).fit(features[fit], target[fit]).predict(features[held])
    truth = target[held]
    assert np.mean(early > truth) < np.mean(plain > truth) - 0.05
    assert phm_score(early, truth) < phm_score(plain, truth)
