"""The optional 1D-CNN: trained with PyTorch (a training dependency), served by onnxruntime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from twins.rul import RunToFailureData
from twins.rul.const import CNN_AGE_INPUT, CNN_BLOCK, CNN_WINDOW_INPUT
from twins.rul.features import FeatureSpec, rows_features

torch = pytest.importorskip("torch", reason="PyTorch (requirements-train.txt) trains the CNN")
from twins.rul.cnn import cnn_to_onnx, fit_cnn, predict_cnn, rows_cnn_windows  # noqa: E402

SENSORS = ("sensor_2", "sensor_3", "sensor_4", "sensor_7", "sensor_11", "sensor_12", "sensor_15")
WINDOW = 60


@pytest.fixture(scope="module")
def cnn_inputs(fd001_slice: RunToFailureData):
    data = fd001_slice.select_units(np.arange(1, 13))
    values = data.select_signals(SENSORS)
    spec = FeatureSpec(SENSORS, values.mean(axis=0), values.std(axis=0), WINDOW)
    z = spec.standardise(values)
    windows = rows_cnn_windows(z, data.unit_bounds(), WINDOW)
    age = rows_features(spec, values, data.unit_bounds())[:, -1:]
    return data, windows, age, np.minimum(data.rul(), 125.0)


def test_it_serves_the_cnn_in_onnxruntime_as_torch_computes_it(cnn_inputs) -> None:
    data, windows, age, target = cnn_inputs
    model = fit_cnn(windows, age, target, 125.0, seed=3, epochs=2)
    session = ort.InferenceSession(cnn_to_onnx(model, windows.shape[1], windows.shape[2]), providers=["CPUExecutionProvider"])
    rows = np.random.default_rng(0).choice(len(windows), 300, replace=False)
    served = session.run(None, {CNN_WINDOW_INPUT: windows[rows], CNN_AGE_INPUT: age[rows]})[0].reshape(-1)
    trained = predict_cnn(model, windows[rows], age[rows])
    assert served.shape == (300,)
    np.testing.assert_allclose(served, trained, atol=1e-3)  # cycles
    # a real model, not a constant: its RULs spread over the engines' lives
    assert np.std(trained) > 5


def test_it_trains_the_cnn_the_same_way_for_the_same_seed(cnn_inputs) -> None:
    _data, windows, age, target = cnn_inputs
    first = predict_cnn(fit_cnn(windows, age, target, 125.0, seed=5, epochs=1), windows[:200], age[:200])
    again = predict_cnn(fit_cnn(windows, age, target, 125.0, seed=5, epochs=1), windows[:200], age[:200])
    other = predict_cnn(fit_cnn(windows, age, target, 125.0, seed=6, epochs=1), windows[:200], age[:200])
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_it_averages_each_block_of_rows_of_the_window(cnn_inputs) -> None:
    data, windows, _age, _target = cnn_inputs
    assert windows.shape[1:] == (WINDOW // CNN_BLOCK, len(SENSORS))
    # the latest block of a row is the mean of its last CNN_BLOCK rows; before the first row: 0
    values = data.select_signals(SENSORS)
    z = (values - values.mean(axis=0)) / values.std(axis=0)
    np.testing.assert_allclose(windows[9, -1], z[5:10].mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(windows[9, :-2], 0.0)
