"""Train, export, register and activate RUL models: from C-MAPSS files or from run-to-failure
histories of the simulator (the demo asset types). Commands and tasks call these."""

from __future__ import annotations

import logging
from pathlib import Path

from edge_node.agent.asset_types import ASSET_TYPES, LIFE_HOURS
from twins import twin_const as tc
from twins.models import RulModel
from twins.rul import RunToFailureData, TrainedRul, load_cmapss, train_rul
from twins.rul_registry import cmapss_serving, simulated_serving, store_trained
from twins.simulated_histories import simulated_fleet_histories

log = logging.getLogger(__name__)


def fit_cmapss(data: RunToFailureData, *, seed: int = 0, n_estimators: int | None = None) -> TrainedRul:
    """A turbofan model: C-MAPSS histories, on the sensors the replay publishes (LightGBM, window
    and validation protocol of the RUL package's defaults, tuned on FD001)."""
    signals = [s for s in data.signals if s in tc.CMAPSS_SIGNAL_METRICS]
    extra = {"n_estimators": n_estimators} if n_estimators else {}
    return train_rul(data, signals=signals, seed=seed, **extra)


def train_cmapss_model(
    path: str | Path, *, seed: int = 0, n_estimators: int | None = None, hours_per_cycle: float = tc.DEFAULT_HOURS_PER_CYCLE,
    activate: bool = True, asset_type_key: str = tc.TURBOFAN_TYPE,
) -> RulModel:
    """A 'turbofan' model (RUL in cycles) on a C-MAPSS training file, on the sensors the replay
    source publishes. Raises CmapssFormatError (naming the line) for a malformed file."""
    data = load_cmapss(path)
    trained = fit_cmapss(data, seed=seed, n_estimators=n_estimators)
    serving = cmapss_serving(hours_per_cycle)
    return store_trained(trained, asset_type_key, serving, trained_on=f"C-MAPSS {Path(path).name}: {data.description}"[:300], activate=activate,
                         name=f"{asset_type_key}-{Path(path).stem}")


def train_simulated_model(
    asset_type: str, *, units: int = tc.SIM_DEFAULT_UNITS, seed: int = 0, n_estimators: int | None = None,
    life_hours: tuple[float, float] | None = None, row_seconds: float = tc.SIM_ROW_SECONDS, window: int = tc.SIM_WINDOW,
    cap_hours: float | None = None, activate: bool = True,
) -> RulModel:
    """A model (RUL in operating hours) for a demo asset type, on simulated run-to-failure
    histories; lives and cap default to the simulator's catalogue for the type."""
    life_hours = life_hours or LIFE_HOURS[asset_type]
    cap_hours = cap_hours or min(tc.SIM_CAP_HOURS[asset_type], 0.9 * life_hours[0])
    data = simulated_fleet_histories(asset_type, units=units, seed=seed, life_hours=life_hours, row_seconds=row_seconds, cap_hours=cap_hours)
    extra = {"n_estimators": n_estimators} if n_estimators else {}
    trained = train_rul(data, window=window, cap=cap_hours * 3600.0 / row_seconds, seed=seed, protocol_seeds=tc.SIM_PROTOCOL_SEEDS, **extra)
    serving = simulated_serving([m.name for m in ASSET_TYPES[asset_type]["metrics"]], row_seconds, life_hours, cap_hours)
    return store_trained(trained, asset_type, serving, trained_on=data.description, activate=activate, name=f"{asset_type}-simulated")


def missing_demo_types() -> list[str]:
    """Demo asset types without an active model."""
    active = set(RulModel.objects.filter(is_active=True).values_list("asset_type_key", flat=True))
    return [t for t in tc.SIM_TYPES if t not in active]
