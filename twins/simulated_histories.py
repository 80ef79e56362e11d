"""Run-to-failure histories of the demo asset types, generated offline by the same simulator
sources the simulated fleet runs (edge_node/agent/sources), with ``fail_at`` set.

One row per ``row_seconds`` of operating time; each row is the mean of a few samples spread
over its interval (the live twin averages 1 Hz telemetry into buckets of the same width).
A realistic life (tens of thousands of operating hours) is sampled as snippets of consecutive
rows at chosen ages, the last one ending at the failure; the time column is the age in rows,
so the package's RUL (last time - time) is the true remaining life in rows. Short lives are
simulated whole. Deterministic per seed. Imports no Django.
"""

from __future__ import annotations

import numpy as np

from edge_node.agent.asset_types import ASSET_TYPES, LIFE_HOURS
from edge_node.agent.sources import make_source
from twins import twin_const as tc
from twins.rul import RunToFailureData


def _rows(source, names: list[str], end_ages: list[float], rows_each: int, row_seconds: float, samples_per_row: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ending at each age in ``end_ages`` (``rows_each`` before it, one per row_seconds):
    (times in rows, values [rows, signals]), each row the mean of samples over its interval."""
    offsets = (np.arange(samples_per_row) + 1) / samples_per_row * row_seconds
    times, block = [], []
    for end in end_ages:
        for r in range(rows_each):
            row_end = end - (rows_each - 1 - r) * row_seconds
            acc = np.zeros(len(names))
            for off in offsets:
                # The last sample of a row lands on its end: the last row of a life is at fail_at.
                values = source.step(row_end - row_seconds + off)[0].values
                acc += [values[n] for n in names]
            times.append(row_end / row_seconds)
            block.append(acc / samples_per_row)
    return np.asarray(times), np.asarray(block)


def unit_history(
    asset_type: str, seed: int, life_s: float, row_seconds: float = tc.SIM_ROW_SECONDS, samples_per_row: int = 3,
) -> dict[str, np.ndarray]:
    """One simulated asset from new to failure, every row: {"time": row number, metric: values}."""
    source = make_source(asset_type, f"train-{asset_type}-{seed}", seed=seed, fail_at=life_s)
    names = [m.name for m in ASSET_TYPES[asset_type]["metrics"]]
    # Before the wear onset every row looks alike: keep HEALTHY_LEAD_S of it, not all of it.
    onset = source.ONSET_FRACTION * life_s
    rows = int((life_s - max(0.0, onset - tc.SIM_HEALTHY_LEAD_S)) // row_seconds)
    if rows < 2:
        raise ValueError(f"a life of {life_s} s is shorter than two rows of {row_seconds} s")
    times, block = _rows(source, names, [life_s], rows, row_seconds, samples_per_row)
    # Time in rows (1..n), so the package's RUL (last time - time) is in rows like the model's output.
    out = {"time": times - times[0] + 1.0}
    for j, n in enumerate(names):
        out[n] = block[:, j]
    return out


def snippet_ends(life_s: float, cap_s: float, rng: np.random.Generator, span_s: float,
                 ramp: int = tc.SIM_RAMP_SNIPPETS, plateau: int = tc.SIM_PLATEAU_SNIPPETS) -> list[float]:
    """Ages (operating seconds) at which snippets end: ``ramp`` remaining lives from 0 to the cap
    (denser near the failure, the first exactly at it) and ``plateau`` ages before the cap;
    sorted, at least ``span_s`` apart so that snippets never overlap."""
    grid = (np.arange(ramp) + np.r_[0.0, rng.uniform(-0.4, 0.4, ramp - 1)]) / max(1, ramp - 1)
    ends = list(life_s - cap_s * np.clip(grid, 0.0, 1.0) ** 1.5)
    last_plateau = life_s - cap_s - span_s
    if last_plateau > 0.05 * life_s:
        ends += list(rng.uniform(0.05 * life_s, last_plateau, plateau))
    kept: list[float] = []
    for end in sorted(ends):
        if end >= span_s and (not kept or end - kept[-1] >= span_s):
            kept.append(end)
    if not kept or kept[-1] != life_s:
        kept = [e for e in kept if life_s - e >= span_s] + [life_s]
    return kept


def unit_snippets(
    asset_type: str, seed: int, life_s: float, cap_s: float, row_seconds: float = tc.SIM_ROW_SECONDS, samples_per_row: int = 3,
    snippet_rows: int = tc.SIM_SNIPPET_ROWS,
) -> dict[str, np.ndarray]:
    """One simulated asset of a long life as snippets of consecutive rows (see ``snippet_ends``):
    {"time": age in rows, metric: values}; the last row is at the failure."""
    source = make_source(asset_type, f"train-{asset_type}-{seed}", seed=seed, fail_at=life_s)
    names = [m.name for m in ASSET_TYPES[asset_type]["metrics"]]
    ends = snippet_ends(life_s, cap_s, np.random.default_rng([seed, 17]), snippet_rows * row_seconds)
    times, block = _rows(source, names, ends, snippet_rows, row_seconds, samples_per_row)
    out = {"time": times}
    for j, n in enumerate(names):
        out[n] = block[:, j]
    return out


def simulated_fleet_histories(
    asset_type: str,
    units: int = tc.SIM_DEFAULT_UNITS,
    seed: int = 0,
    life_hours: tuple[float, float] | None = None,
    row_seconds: float = tc.SIM_ROW_SECONDS,
    samples_per_row: int | None = None,
    cap_hours: float | None = None,
) -> RunToFailureData:
    """``units`` simulated assets of one type run to failure, lives drawn uniformly in
    ``life_hours`` (default: the simulator's catalogue). Lives too long to simulate whole are
    sampled as snippets (``unit_snippets``) up to ``cap_hours`` before the failure."""
    if asset_type not in ASSET_TYPES or asset_type == tc.TURBOFAN_TYPE:
        raise ValueError(f"no simulator for asset type {asset_type!r} (simulated: {', '.join(tc.SIM_TYPES)})")
    if units < 2:
        raise ValueError("need at least 2 units (some are held out for validation)")
    life_hours = life_hours or LIFE_HOURS[asset_type]
    cap_hours = cap_hours or tc.SIM_CAP_HOURS[asset_type]
    rng = np.random.default_rng(seed)
    lives = rng.uniform(life_hours[0], life_hours[1], units) * 3600.0
    spr = samples_per_row or tc.SIM_SAMPLES_PER_ROW.get(asset_type, 3)
    budget = (tc.SIM_RAMP_SNIPPETS + tc.SIM_PLATEAU_SNIPPETS) * tc.SIM_SNIPPET_ROWS * row_seconds
    histories = {}
    for u, life in enumerate(lives):
        # Seeds far from the demo fleet's (asset pks): the model never trains on a demo asset's noise.
        unit_seed = seed * 100_003 + 10_000 + u
        if life <= 2 * budget:
            histories[u + 1] = unit_history(asset_type, unit_seed, float(life), row_seconds, spr)
        else:
            histories[u + 1] = unit_snippets(asset_type, unit_seed, float(life), min(cap_hours * 3600.0, 0.9 * life), row_seconds, spr)
    how = (f"snippets of {tc.SIM_SNIPPET_ROWS} rows at {tc.SIM_RAMP_SNIPPETS} remaining lives up to {cap_hours:g} h and "
           f"{tc.SIM_PLATEAU_SNIPPETS} earlier ages" if life_hours[0] * 3600.0 > 2 * budget else
           f"whole lives from {tc.SIM_HEALTHY_LEAD_S / 3600:g} h before wear onset")
    description = (
        f"simulated {asset_type}: {units} units run to failure, lives {life_hours[0]:,.0f}-{life_hours[1]:,.0f} operating hours, "
        f"{how}, one row per {row_seconds:g} s (mean of {spr} samples), seed {seed}"
    )
    return RunToFailureData.from_histories(histories, time_key="time", description=description)
