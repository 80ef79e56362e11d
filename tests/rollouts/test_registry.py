from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from edge_node import signing_keys
from edge_node.agent import artifact
from edge_node.models import AuditEvent
from edge_node.rollouts import const
from edge_node.rollouts.registry import (
    RegistryError,
    register_anomaly_model,
    register_model,
    register_rul_model,
    verify_stored,
)
from tests.rollouts.models_for_tests import mlp_onnx

pytestmark = pytest.mark.django_db


def test_it_registers_and_signs_an_anomaly_model(registry_settings, model_dirs, admin_user):
    model = register_anomaly_model(model_dirs["v1"], user=admin_user)
    data = Path(model.file_path).read_bytes()
    assert Path(model.file_path).is_relative_to(Path(registry_settings.VAR_DIR) / "models" / "registry")
    assert data == (model_dirs["v1"] / "model.onnx").read_bytes()
    assert model.sha256 == artifact.sha256_hex(data) and model.size == len(data)
    assert signing_keys.verify(artifact.signed_message(model.manifest()), base64.b64decode(model.signature))
    assert model.inputs[0]["type"] == "tensor(float)" and model.inputs[0]["shape"][-1] == 3
    assert model.metadata["features"] == ["vib_rms", "temperature_c", "current_a"]
    assert verify_stored(model)
    assert AuditEvent.objects.filter(action=const.AUDIT_MODEL_REGISTERED, target=model.label, actor=admin_user.username).exists()


def test_it_detects_a_stored_file_changed_after_signing(registry_settings, model_dirs):
    model = register_anomaly_model(model_dirs["v1"])
    path = Path(model.file_path)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    assert not verify_stored(model)


def test_it_refuses_a_file_that_is_not_onnx(registry_settings, admin_user):
    with pytest.raises(RegistryError, match="not a loadable ONNX model"):
        register_model(b"this is not a model", name="junk", version="1", kind="rul", user=admin_user)
    assert AuditEvent.objects.filter(action=const.AUDIT_MODEL_REFUSED, target="junk@1", ok=False).exists()


def test_it_refuses_a_declared_signature_that_does_not_match(registry_settings):
    data = mlp_onnx(width=16)
    with pytest.raises(RegistryError, match="declared shape"):
        register_model(data, name="mlp", version="1", kind="rul",
                       declared={"inputs": [{"name": "X", "type": "tensor(float)", "shape": [None, 8]}], "outputs": [{"name": "Y"}]})
    with pytest.raises(RegistryError, match="'features' is not in the model"):
        register_model(data, name="mlp", version="1", kind="rul", declared={"inputs": [{"name": "features"}], "outputs": [{"name": "Y"}]})
    with pytest.raises(RegistryError, match="tensor\\(double\\)"):
        register_model(data, name="mlp", version="1", kind="rul",
                       declared={"inputs": [{"name": "X", "type": "tensor(double)"}], "outputs": [{"name": "Y"}]})
    ok = register_model(data, name="mlp", version="1", kind="rul",
                        declared={"inputs": [{"name": "X", "type": "tensor(float)", "shape": [None, 16]}], "outputs": [{"name": "Y"}]})
    assert ok.inputs == [{"name": "X", "type": "tensor(float)", "shape": [None, 16]}]


def test_it_refuses_an_anomaly_model_without_the_agent_metadata(registry_settings, model_dirs):
    with pytest.raises(RegistryError, match="lacks features, threshold"):
        register_model(model_dirs["v1"] / "model.onnx", name="m", version="1", kind="anomaly", metadata={"asset_type": "x"})


def test_it_refuses_a_second_file_under_the_same_version(registry_settings, model_dirs):
    register_anomaly_model(model_dirs["v1"])
    with pytest.raises(RegistryError, match="immutable"):
        register_model(model_dirs["v2"] / "model.onnx", name="motor-anomaly", version="1", kind="anomaly",
                       metadata={"asset_type": "induction_motor", "features": ["a", "b", "c"], "threshold": 0.1})


def test_it_records_a_quantized_variant_with_its_size_and_accuracy_change(registry_settings):
    model = register_model(mlp_onnx(width=128), name="mlp-rul", version="7", kind="rul", quantize=True)
    variant = model.quantized_variants.get()
    assert variant.version == "7-int8" and variant.quantized
    assert variant.size < model.size * 0.5
    assert variant.size_change_pct == pytest.approx(100.0 * (variant.size - model.size) / model.size, abs=0.01)
    assert 0.0 < variant.accuracy_change["max_abs_diff"] < 1.0
    assert variant.accuracy_change["mean_abs_diff"] <= variant.accuracy_change["max_abs_diff"]
    assert verify_stored(variant)


def test_it_registers_a_rul_training_run(registry_settings, tmp_path):
    from twins.models import RulModel

    folder = tmp_path / "rul-run"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(mlp_onnx(width=8))
    (folder / "meta.json").write_text('{"rul_unit": "cycles"}')
    run = RulModel.objects.create(version="fd001-x1", asset_type_key="turbofan", artifact_path=str(folder))
    model = register_rul_model(run)
    assert (model.name, model.version, model.kind) == ("turbofan-rul", "fd001-x1", "rul")
    assert model.metadata["rul_unit"] == "cycles"


def test_it_registers_a_trained_folder_from_the_command_line(registry_settings, model_dirs):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("register_model", str(model_dirs["v2"]), stdout=out)
    assert re.search(r"registered motor-anomaly@2 \(id \d+\) sha256=", out.getvalue())
    with pytest.raises(Exception, match="immutable"):
        call_command("register_model", str(model_dirs["v2"]), stdout=out)


def test_it_asks_for_the_kind_and_says_why_a_rul_model_cannot_be_rolled_out(client, registry_settings, model_dirs, admin_user):
    import json

    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(admin_user)
    folder = model_dirs["v1"]
    form = {"name": "motor-anomaly", "version": "9", "metadata": (folder / "meta.json").read_text()}
    upload = SimpleUploadedFile("model.onnx", (folder / "model.onnx").read_bytes())
    page = client.post("/model-registry/", {**form, "file": upload}).content.decode()
    assert "Choose the kind of model" in page  # no silent default
    rul = register_model(folder / "model.onnx", name="pump-rul", version="1", kind=const.KIND_RUL, metadata=json.loads(form["metadata"]))
    page = client.get(f"/model-registry/{rul.pk}/").content.decode()
    assert 'id="no-rollout"' in page and "Edge agents run anomaly models only" in page and 'id="propose-form"' not in page
