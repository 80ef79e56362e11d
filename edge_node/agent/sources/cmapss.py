"""C-MAPSS replay: plays the engines of a C-MAPSS file as "turbofan" assets.

A C-MAPSS file (NASA turbofan degradation data) has one row per engine cycle: unit,
cycle, 3 operational settings and 21 sensors, whitespace-separated. Training files run
every engine until failure. The source replays one engine: by default one cycle per tick
(per sample), so the replay speed is the sampling rate; with ``cycle_s`` > 0 (or
``fail_at``, which stretches the engine's life to end then), one cycle every ``cycle_s``
sim seconds, every cycle played (several per tick at a high speed-up). When the engine's
last cycle has played it is replaced by the next engine of the file (``loop``).
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import const
from .base import Sample, Source, SourceError, clamp_to_spec

# The 14 sensors that carry information in FD001 (the other 7 are constant there).
SENSOR_COLUMNS = {
    "s2": 6, "s3": 7, "s4": 8, "s7": 11, "s8": 12, "s9": 13, "s11": 15,
    "s12": 16, "s13": 17, "s14": 18, "s15": 19, "s17": 21, "s20": 24, "s21": 25,
}
MAX_CYCLES_PER_STEP = 1000

_cache: dict[str, np.ndarray] = {}
_units_cache: dict[str, dict[int, np.ndarray]] = {}
_cache_lock = threading.Lock()


def default_cmapss_path() -> Path:
    """``$AIOT_CMAPSS_PATH``, else the FD001 file vendored in the repository (datasets/cmapss)."""
    env = os.environ.get("AIOT_CMAPSS_PATH")
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[3]
    return repo_root / "datasets" / "cmapss" / "train_FD001.txt.gz"


def load_cmapss(path: str | Path) -> np.ndarray:
    """The file's rows as a float array (shared between sources: a fleet replays one file)."""
    key = str(Path(path).resolve())
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        try:
            data = np.loadtxt(key, dtype=np.float64, ndmin=2)
        except OSError as exc:
            raise SourceError(f"cannot read C-MAPSS file {key}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise SourceError(f"{key} is not a C-MAPSS file: {exc}") from None
        if data.shape[1] != 26:
            raise SourceError(f"{key} is not a C-MAPSS file: {data.shape[1]} columns, expected 26")
        _cache[key] = data
        return data


def engines_of(path: str | Path) -> dict[int, np.ndarray]:
    """unit -> its rows (cycle order), split once per file and shared by every replay."""
    data = load_cmapss(path)
    key = str(Path(path).resolve())
    with _cache_lock:
        if key not in _units_cache:
            order = np.argsort(data[:, 0], kind="stable")
            units, starts = np.unique(data[order, 0], return_index=True)
            parts = np.split(data[order], starts[1:])
            _units_cache[key] = {int(u): p for u, p in zip(units, parts, strict=True)}
        return _units_cache[key]


class CmapssReplay(Source):
    asset_type = "turbofan"
    PARAMS: ClassVar[dict[str, Any]] = {"path": "", "unit": 0, "cycle_s": 0.0, "loop": True, "first_cycle": 1}
    FAULT_KINDS = ("sensor_spike", "end_of_life")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        path = self.params["path"] or default_cmapss_path()
        self._by_unit = engines_of(path)
        self._units = sorted(self._by_unit)
        unit = int(self.params["unit"]) or self._units[self.seed % len(self._units)]
        if unit not in self._by_unit:
            raise SourceError(f"unit {unit} is not in {path} (units {self._units[0]}..{self._units[-1]})")
        self.unit = unit
        self.cycle_s = float(self.params["cycle_s"])  # 0: one cycle per tick
        if self.cycle_s < 0:
            raise SourceError("cycle_s must be >= 0 (0: one cycle per tick)")
        if self.fail_at is not None:
            # Stretch the engine's life so that its last cycle plays at fail_at.
            self.cycle_s = self.fail_at / len(self._by_unit[unit])
        self._played = 0  # cycles emitted in total
        self._row = int(self.params["first_cycle"]) - 1  # index into the current engine's rows
        self._skip_to_end = False

    def wear(self, sim_t: float) -> float:
        rows = self._by_unit[self.unit]
        return min(1.0, self._row / max(1, len(rows) - 1))

    def step(self, sim_t: float) -> list[Sample]:
        if self.cycle_s == 0:
            self._played += 1
            sample = self._next_cycle(sim_t)
            return [sample] if sample is not None else []
        due = math.floor(sim_t / self.cycle_s) + 1 - self._played
        out = []
        for _ in range(max(0, min(due, MAX_CYCLES_PER_STEP))):
            t = self._played * self.cycle_s
            self._played += 1
            sample = self._next_cycle(t)
            if sample is not None:
                out.append(sample)
        return out

    def _next_cycle(self, t: float) -> Sample | None:
        rows = self._by_unit[self.unit]
        eol = self.active_fault(t, "end_of_life")
        if eol and not self._skip_to_end:
            self._skip_to_end = True
            self._row = max(self._row, len(rows) - 10)
        if self._row >= len(rows):
            if not self.params["loop"]:
                return None
            # Engine ran to failure: the next engine of the file takes its place.
            i = self._units.index(self.unit)
            self.unit = self._units[(i + 1) % len(self._units)]
            self._row = 0
            self._skip_to_end = False
            rows = self._by_unit[self.unit]
        row = rows[self._row]
        self._row += 1
        values = {name: float(row[col]) for name, col in SENSOR_COLUMNS.items()}
        values["cycle"] = float(row[1])
        spike = self.active_fault(t, "sensor_spike")
        if spike:
            values["s4"] += 80.0 * spike.magnitude
        sample = Sample(t, clamp_to_spec(self.asset_type, values), raw_bytes=const.RAW_BYTES_SLOW * len(values))
        fault = self.active_fault(t)
        sample.fault = fault.kind if fault else None
        return sample
