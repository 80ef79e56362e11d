"""Fixtures of the twin tests: a small FD001 model trained once per session (held-out engines
known), the asset types of the simulator's catalogue, and a telemetry writer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import _missing
from twins.rul.const import FD001_TRAIN

FD001 = FD001_TRAIN
TRAIN_UNITS = range(1, 71)  # engines 71..100 are never seen in training
TREES = 30


@pytest.fixture(scope="session")
def fd001_path() -> Path:
    if not FD001.exists():
        _missing(f"needs the C-MAPSS FD001 training file at {FD001}")
    return FD001


@dataclass
class SessionModel:
    path: Path
    trained: object
    data: object


@pytest.fixture(scope="session")
def fd001_model(fd001_path, tmp_path_factory) -> SessionModel:
    """A turbofan model on engines 1..70 of FD001 (14 replayed sensors), saved once."""
    from twins.rul import load_cmapss, save_model, train_rul
    from twins.twin_const import CMAPSS_SIGNAL_METRICS

    data = load_cmapss(fd001_path)
    fit = data.select_units(list(TRAIN_UNITS))
    trained = train_rul(fit, signals=list(CMAPSS_SIGNAL_METRICS), n_estimators=TREES, seed=0)
    out = tmp_path_factory.mktemp("rul") / "fd001-slice"
    save_model(trained, out)
    return SessionModel(out, trained, data)


@pytest.fixture(autouse=True)
def fresh_twin_windows():
    """The refresh keeps readings between calls in this process (twins/twin_window.py); every
    test starts without them (rolled-back test data must not linger)."""
    from twins import twin_window

    twin_window.clear()
    yield
    twin_window.clear()


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


@pytest.fixture
def asset_types(db):
    from web.demo import sync_asset_types

    return sync_asset_types()


@pytest.fixture
def turbofan_model(db, fd001_model, var_dir):
    """The session's FD001 model registered and active for 'turbofan'."""
    from twins.rul_registry import cmapss_serving, register_model

    return register_model(fd001_model.path, "turbofan", cmapss_serving(1.5), trained_on="FD001 engines 1-70", activate=True)


def write_engine(asset, metrics: dict[str, int], rows: np.ndarray, t0: float, cycle_s: float = 1.0) -> float:
    """Store C-MAPSS rows ([cycles, 26]) of one engine as the ingest stores the replay source's
    readings: one reading per cycle with the 14 sensors as s<N>, plus the latest values.
    Returns the last reading's time."""
    from edge_node.agent.sources.cmapss import SENSOR_COLUMNS
    from ingest import timeseries

    out = []
    t = t0
    for i, row in enumerate(rows):
        t = t0 + i * cycle_s
        ts = datetime.fromtimestamp(t, UTC)
        for name, col in SENSOR_COLUMNS.items():
            out.append((ts, asset.id, metrics[name], float(row[col])))
        out.append((ts, asset.id, metrics["cycle"], float(row[1])))
    timeseries.write_rows(out)
    # As the ingest does: the latest value of each metric in one upsert.
    last = datetime.fromtimestamp(t, UTC)
    timeseries.upsert_latest({(a, m): (ts, v) for ts, a, m, v in out if ts == last})
    return t
