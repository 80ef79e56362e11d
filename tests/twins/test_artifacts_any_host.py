"""A RUL model registered on one host serves twins on another whose AIOT_VAR_DIR lacks its files."""

from __future__ import annotations

import shutil

from twins import rul_registry
from twins.rul_registry import cmapss_serving, predictor_for, register_model


def test_a_rul_model_loads_on_a_host_without_its_files(db, fd001_model, var_dir, tmp_path_factory):
    first_host = tmp_path_factory.mktemp("first-host")
    elsewhere = first_host / "models" / "rul" / "v1"
    shutil.copytree(fd001_model.path, elsewhere)
    model = register_model(elsewhere, "turbofan", cmapss_serving(1.5), trained_on="FD001 engines 1-70", activate=True)
    shutil.rmtree(first_host)  # this host (var_dir) never had the files
    rul_registry._cache.clear()
    predictor = predictor_for(model)
    assert predictor.version == model.version
    assert (var_dir / "models" / "rul" / "v1" / "model.onnx").is_file()
