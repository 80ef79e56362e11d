"""Run-to-failure histories of the demo asset types, generated offline by the same simulator
sources the simulated fleet runs (edge_node/agent/sources), with ``fail_at`` set.

One row per ``row_seconds`` of operating time; each row is the mean of a few samples spread
over its interval (the live twin averages 1 Hz telemetry into buckets of the same width).
Deterministic per seed. Imports no Django.
"""

from __future__ import annotations

import numpy as np

from edge_node.agent.asset_types import ASSET_TYPES
from edge_node.agent.sources import make_source
from twins import twin_const as tc
from twins.rul import RunToFailureData


def unit_history(
    asset_type: str, seed: int, life_s: float, row_seconds: float = tc.SIM_ROW_SECONDS, samples_per_row: int = 3,
) -> dict[str, np.ndarray]:
    """One simulated asset from new to failure: {"time": row number, metric: values}, the last row at fail_at."""
    source = make_source(asset_type, f"train-{asset_type}-{seed}", seed=seed, fail_at=life_s)
    names = [m.name for m in ASSET_TYPES[asset_type]["metrics"]]
    # Before the wear onset every row looks alike: keep HEALTHY_LEAD_S of it (enough for the
    # short-history rows and the healthy look), not the whole healthy part of a long life.
    onset = source.ONSET_FRACTION * life_s
    rows = int((life_s - max(0.0, onset - tc.SIM_HEALTHY_LEAD_S)) // row_seconds)
    if rows < 2:
        raise ValueError(f"a life of {life_s} s is shorter than two rows of {row_seconds} s")
    block = np.empty((rows, len(names)))
    offsets = (np.arange(samples_per_row) + 1) / samples_per_row * row_seconds
    for r in range(rows):
        acc = np.zeros(len(names))
        for off in offsets:
            # The last sample of the last row lands on fail_at: the row whose RUL is 0.
            values = source.step(life_s - (rows - 1 - r) * row_seconds - row_seconds + off)[0].values
            acc += [values[n] for n in names]
        block[r] = acc / samples_per_row
    # Time in rows (1..n), so the package's RUL (last time - time) is in rows like the model's output.
    out = {"time": np.arange(1, rows + 1, dtype=np.float64)}
    for j, n in enumerate(names):
        out[n] = block[:, j]
    return out


def simulated_fleet_histories(
    asset_type: str,
    units: int = tc.SIM_DEFAULT_UNITS,
    seed: int = 0,
    life_hours: tuple[float, float] = tc.SIM_LIFE_HOURS,
    row_seconds: float = tc.SIM_ROW_SECONDS,
    samples_per_row: int | None = None,
) -> RunToFailureData:
    """``units`` simulated assets of one type run to failure, lives drawn uniformly in ``life_hours``."""
    if asset_type not in ASSET_TYPES or asset_type == tc.TURBOFAN_TYPE:
        raise ValueError(f"no simulator for asset type {asset_type!r} (simulated: {', '.join(tc.SIM_TYPES)})")
    if units < 2:
        raise ValueError("need at least 2 units (some are held out for validation)")
    rng = np.random.default_rng(seed)
    lives = rng.uniform(life_hours[0], life_hours[1], units) * 3600.0
    spr = samples_per_row or tc.SIM_SAMPLES_PER_ROW.get(asset_type, 3)
    # Seeds far from the demo fleet's (asset pks): the model never trains on a demo asset's noise.
    histories = {
        u + 1: unit_history(asset_type, seed * 100_003 + 10_000 + u, float(life), row_seconds, spr) for u, life in enumerate(lives)
    }
    description = (
        f"simulated {asset_type}: {units} units run to failure, lives {life_hours[0]:g}-{life_hours[1]:g} h, "
        f"up to {tc.SIM_HEALTHY_LEAD_S / 3600:g} h healthy before wear onset, one row per {row_seconds:g} s (mean of {spr} samples), seed {seed}"
    )
    return RunToFailureData.from_histories(histories, time_key="time", description=description)
