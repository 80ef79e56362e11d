from __future__ import annotations

import json

import numpy as np
import pytest

from edge_node.agent.models import ModelSlot, current_version, load_model, set_current
from edge_node.agent.sources import make_source
from edge_node.agent.train_anomaly import (
    healthy_windows,
    model_features,
    train_anomaly_model,
)


@pytest.mark.parametrize("exporter", ["compact", "skl2onnx"])
def test_onnx_scores_equal_scikit_learns(tmp_path, exporter):
    from sklearn.ensemble import IsolationForest

    folder = train_anomaly_model("centrifugal_pump", tmp_path, n_windows=600, n_estimators=40, random_state=3,
                                 exporter=exporter)
    model = load_model(tmp_path, "centrifugal_pump-anomaly")
    x = healthy_windows("centrifugal_pump", 600)
    reference = IsolationForest(n_estimators=40, random_state=3).fit(x)
    # unseen data, healthy and faulty
    src = make_source("centrifugal_pump", "p", seed=99, fail_at=3000.0)
    src.inject_fault("cavitation", at=500.0, duration_s=100.0)
    probe = np.array([[s.values[f] for f in model_features("centrifugal_pump")]
                      for t in range(0, 3000, 10) for s in src.step(float(t))], dtype=np.float32)
    onnx_scores = model.score_batch(probe)
    np.testing.assert_allclose(onnx_scores, -reference.decision_function(probe), atol=1e-5)
    assert json.loads((folder / "meta.json").read_text())["onnx_vs_sklearn_max_abs_diff"] < 1e-4


def test_the_motor_model_flags_bearing_impacts_and_wear_but_not_health(motor_models):
    model = load_model(motor_models, "induction_motor-anomaly")
    healthy = make_source("induction_motor", "m", seed=42)
    healthy_scores = [model.score(healthy.step(float(t))[0].values) for t in range(0, 4000, 20)]
    assert np.mean(np.array(healthy_scores) > model.threshold) < 0.02
    faulty = make_source("induction_motor", "m", seed=42)
    faulty.inject_fault("bearing_impact", at=100.0, duration_s=100.0)
    assert all(model.score(faulty.step(float(t))[0].values) > model.threshold for t in range(110, 190, 10))
    worn = make_source("induction_motor", "m", seed=42, fail_at=10_000.0)
    assert np.mean([model.score(worn.step(float(t))[0].values) > model.threshold for t in range(9000, 10000, 50)]) > 0.8


def test_set_current_switches_versions_atomically(motor_models, tmp_path):
    import shutil

    models = tmp_path / "models"
    shutil.copytree(motor_models, models)
    src = models / "induction_motor-anomaly"
    shutil.copytree(src / "1", src / "2")
    meta = json.loads((src / "2" / "meta.json").read_text())
    (src / "2" / "meta.json").write_text(json.dumps({**meta, "version": "2"}))
    slot = ModelSlot(load_model(models, "induction_motor-anomaly"))
    assert slot.model.version == "1"
    set_current(models, "induction_motor-anomaly", "2")
    assert current_version(models, "induction_motor-anomaly") == "2"
    old = slot.swap(load_model(models, "induction_motor-anomaly"))
    assert (old.version, slot.model.version) == ("1", "2")
    assert not list(src.glob(".current*"))  # no temp file left behind
    with pytest.raises(Exception, match="has no model.onnx"):
        set_current(models, "induction_motor-anomaly", "7")
    assert current_version(models, "induction_motor-anomaly") == "2"


def test_the_agent_reloads_a_new_current_version_and_reports_it(motor_models, tmp_path):
    import shutil

    from edge_node.agent.agent import Agent
    from edge_node.agent.config import AgentConfig, BrokerConfig, SourceConfig

    models = tmp_path / "models"
    shutil.copytree(motor_models, models)
    src = models / "induction_motor-anomaly"
    shutil.copytree(src / "1", src / "2")
    meta = json.loads((src / "2" / "meta.json").read_text())
    (src / "2" / "meta.json").write_text(json.dumps({**meta, "version": "2"}))
    cfg = AgentConfig(node_id="t-reload", broker=BrokerConfig(url="mqtt://127.0.0.1:9"), state_dir=tmp_path / "s",
                      models_dir=models, sources=[SourceConfig("induction_motor", "m1"), SourceConfig("induction_motor", "m2")])
    agent = Agent(cfg)
    assert agent.model_versions() == {"induction_motor-anomaly": "1"}
    assert agent.reload_models() == {}
    set_current(models, "induction_motor-anomaly", "2")
    assert agent.reload_models() == {"induction_motor-anomaly": "2"}
    assert agent.model_versions() == {"induction_motor-anomaly": "2"}
    assert agent._status("online", 0.0)["versions"]["model"] == "induction_motor-anomaly@2"
    (src / "3").mkdir()
    (src / "3" / "model.onnx").write_bytes(b"garbage")
    (src / "3" / "meta.json").write_text((src / "2" / "meta.json").read_text())
    set_current(models, "induction_motor-anomaly", "3")
    with pytest.raises(Exception, match="cannot load"):
        agent.reload_models()
    assert agent.model_versions() == {"induction_motor-anomaly": "2"}  # the old one keeps running
    agent.outbox.close()
