"""Fixtures: a slice of the real C-MAPSS FD001 training data and a small model trained on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twins.rul import (
    RulPredictor,
    RunToFailureData,
    TrainedRul,
    load_cmapss,
    load_model,
    save_model,
    train_rul,
)
from twins.rul.const import FD001_TRAIN

REPO_ROOT = Path(__file__).resolve().parents[2]
FD001 = FD001_TRAIN
SLICE_UNITS = 40
SMALL_TREES = 40


@pytest.fixture(scope="session")
def fd001() -> RunToFailureData:
    if not FD001.is_file():
        pytest.fail(
            f"C-MAPSS data missing at {FD001} (see datasets/cmapss/README.md)"
        )
    return load_cmapss(FD001)


@pytest.fixture(scope="session")
def fd001_slice(fd001: RunToFailureData) -> RunToFailureData:
    """The first SLICE_UNITS engines."""
    return fd001.select_units(np.arange(1, SLICE_UNITS + 1))


@pytest.fixture(scope="session")
def trained(fd001_slice: RunToFailureData) -> TrainedRul:
    return train_rul(fd001_slice, seed=7, n_estimators=SMALL_TREES)


@pytest.fixture(scope="session")
def model_dir(trained: TrainedRul, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rul_model")
    save_model(trained, out)
    return out


@pytest.fixture(scope="session")
def predictor(model_dir: Path) -> RulPredictor:
    return load_model(model_dir)


def pump_fleet(units: int, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Run-to-failure pumps: vibration grows and flow drops over the last 100 rows of life."""
    rng = np.random.default_rng(seed)
    fleet = {}
    for unit in range(units):
        life = int(rng.integers(150, 260))
        t = np.arange(1, life + 1, dtype=float)
        wear = np.clip((t - life + 100) / 100, 0, None) ** 1.5
        fleet[f"pump-{unit}"] = {
            "time": t,
            "vib_rms": 2 + 6 * wear + rng.normal(0, 0.3, life),
            "flow_m3h": 400 - 80 * wear + rng.normal(0, 4, life),
            "serial_flag": np.ones(life),
        }
    return fleet
