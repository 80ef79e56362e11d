"""train_rul and eval_rul as an admin runs them: real FD001 data, models under VAR_DIR,
registered and active, ONNX predictions equal to scikit-learn's, malformed files refused
with the line named."""

from __future__ import annotations

import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from twins.models import RulModel
from twins.rul import (
    histories_features,
    load_cmapss,
    load_model,
    truncate_units,
    write_cmapss,
)

pytestmark = pytest.mark.django_db


def _last_json(out: StringIO) -> dict:
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.fixture
def fd001_slice(fd001_path, tmp_path):
    """The first 24 engines of FD001, in C-MAPSS format (outside the repository)."""
    path = tmp_path / "train_slice.txt"
    write_cmapss(path, load_cmapss(fd001_path).select_units(range(1, 25)))
    return path


def test_it_trains_registers_and_activates_a_turbofan_model_whose_onnx_matches_scikit_learn(fd001_slice, var_dir):
    from twins.rul_training import fit_cmapss

    out = StringIO()
    call_command("train_rul", "--cmapss", str(fd001_slice), "--trees", "12", stdout=out)
    printed = _last_json(out)
    model = RulModel.objects.get(version=printed["version"])
    assert model.is_active and model.asset_type_key == "turbofan" and model.rul_unit == "cycles"
    assert printed["metrics"] == model.metrics and set(model.metrics) >= {"rmse", "rmse_sd", "phm_score", "coverage80", "interval_width_mean", "engines", "seeds"}
    assert model.metrics["rmse"] > 0 and 0 <= model.metrics["coverage80"] <= 1
    assert (var_dir / "models" / "rul" / model.version / "model.onnx").is_file()

    # The same training (deterministic per seed) in scikit-learn, against the registered ONNX model.
    data = load_cmapss(fd001_slice)
    trained = fit_cmapss(data, seed=0, n_estimators=12)
    predictor = load_model(model.artifact_path)
    assert predictor.signals == trained.spec.signals
    cut, _truth = truncate_units(data, seed=3)
    histories = [cut.select_units([u]).select_signals(predictor.signals) for u in cut.unit_ids]
    features = histories_features(predictor.spec, histories)
    np.testing.assert_allclose(predictor.predict_features(features), trained.predict_features(features), rtol=1e-4, atol=1e-3)


def test_it_activates_the_newest_model_of_a_type_and_keeps_the_older_one(fd001_slice, var_dir):
    first, second = StringIO(), StringIO()
    call_command("train_rul", "--cmapss", str(fd001_slice), "--trees", "5", stdout=first)
    call_command("train_rul", "--cmapss", str(fd001_slice), "--trees", "6", stdout=second)
    old, new = _last_json(first)["version"], _last_json(second)["version"]
    assert old != new
    assert list(RulModel.objects.filter(asset_type_key="turbofan", is_active=True).values_list("version", flat=True)) == [new]
    assert RulModel.objects.filter(version=old, is_active=False).exists()


def test_it_refuses_a_malformed_training_file_naming_the_line(tmp_path, var_dir):
    bad = tmp_path / "train_bad.txt"
    bad.write_text("1 1 " + " ".join(["0.5"] * 24) + "\n1 2 0.1 0.2 0.3\n")
    with pytest.raises(CommandError, match=r"line 2"):
        call_command("train_rul", "--cmapss", str(bad), stdout=StringIO())
    assert not RulModel.objects.exists()


@pytest.fixture
def test_files(fd001_model, tmp_path):
    """A test set the official way from held-out engines 71..90: cut at random cycles, with the truth."""
    cut, truth = truncate_units(fd001_model.data.select_units(range(71, 91)), seed=11)
    test, rul = tmp_path / "test_slice.txt", tmp_path / "RUL_slice.txt"
    write_cmapss(test, cut)
    rul.write_text("".join(f"{int(t)}\n" for t in truth))
    return test, rul


def test_it_scores_the_active_model_on_a_cmapss_test_file(turbofan_model, test_files):
    test, rul = test_files
    out = StringIO()
    call_command("eval_rul", "--test", str(test), "--truth", str(rul), stdout=out)
    scores = _last_json(out)
    assert set(scores) == {"rmse", "phm_score", "coverage80", "engines", "interval_width_mean"}
    assert scores["engines"] == 20
    assert 0 < scores["rmse"] < 60 and 0 <= scores["coverage80"] <= 1 and scores["interval_width_mean"] > 0


def test_it_scores_a_named_version_and_refuses_an_unknown_one(turbofan_model, test_files):
    test, rul = test_files
    out = StringIO()
    call_command("eval_rul", "--test", str(test), "--truth", str(rul), "--model", turbofan_model.version, stdout=out)
    assert _last_json(out)["engines"] == 20
    with pytest.raises(CommandError, match="no RUL model version 'rul-nope'"):
        call_command("eval_rul", "--test", str(test), "--truth", str(rul), "--model", "rul-nope", stdout=StringIO())


def test_it_refuses_malformed_test_and_truth_files_naming_the_line(turbofan_model, test_files, tmp_path):
    test, rul = test_files
    bad_test = tmp_path / "test_bad.txt"
    lines = test.read_text().splitlines()
    lines[4] = "1 5 abc " + " ".join(["1"] * 23)
    bad_test.write_text("\n".join(lines) + "\n")
    with pytest.raises(CommandError, match=r"test_bad.txt.*line 5"):
        call_command("eval_rul", "--test", str(bad_test), "--truth", str(rul), stdout=StringIO())
    bad_truth = tmp_path / "RUL_bad.txt"
    bad_truth.write_text("12\nseven\n30\n")
    with pytest.raises(CommandError, match=r"RUL_bad.txt.*line 2"):
        call_command("eval_rul", "--test", str(test), "--truth", str(bad_truth), stdout=StringIO())
    short_truth = tmp_path / "RUL_short.txt"
    short_truth.write_text("12\n")
    with pytest.raises(CommandError, match="1 true RUL values for 20 units"):
        call_command("eval_rul", "--test", str(test), "--truth", str(short_truth), stdout=StringIO())


def test_it_says_when_no_turbofan_model_is_active(test_files):
    test, rul = test_files
    with pytest.raises(CommandError, match="no active 'turbofan' model"):
        call_command("eval_rul", "--test", str(test), "--truth", str(rul), stdout=StringIO())
