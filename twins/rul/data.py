"""Run-to-failure histories: many units, each a time-ordered table of named numeric signals.

Every unit's history ends at its failure, so the true remaining useful life of a row is
(last time of the unit) - (time of the row). The structure is generic over signal names so
that C-MAPSS engines and the simulated motors, pumps and HVAC units share one trainer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RunToFailureData:
    """Rows of many units, sorted by (unit, time).

    ``values[i, j]`` is signal ``signals[j]`` of unit ``units[i]`` at ``time[i]``.
    """

    units: np.ndarray
    time: np.ndarray
    values: np.ndarray
    signals: tuple[str, ...]
    description: str = ""
    _starts: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        units = np.asarray(self.units)
        time = np.asarray(self.time, dtype=np.float64)
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(self.signals):
            raise ValueError(
                f"values must be [rows, {len(self.signals)}] for signals {list(self.signals)}, "
                f"got shape {values.shape}"
            )
        if not (len(units) == len(time) == len(values)):
            raise ValueError(
                f"units, time and values differ in length: {len(units)}, {len(time)}, {len(values)}"
            )
        if len(set(self.signals)) != len(self.signals):
            raise ValueError(f"duplicate signal names: {list(self.signals)}")
        if len(units) == 0:
            raise ValueError(
                "no rows: a run-to-failure data set needs at least one unit"
            )
        if not np.isfinite(values).all() or not np.isfinite(time).all():
            bad = int(
                np.flatnonzero(~np.isfinite(values).all(axis=1) | ~np.isfinite(time))[0]
            )
            raise ValueError(f"non-finite value in row {bad} (unit {units[bad]!r})")
        order = np.lexsort((time, units))
        units, time, values = units[order], time[order], values[order]
        starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])
        same_unit = units[1:] == units[:-1]
        if np.any(same_unit & (time[1:] <= time[:-1])):
            i = int(np.flatnonzero(same_unit & (time[1:] <= time[:-1]))[0])
            raise ValueError(f"unit {units[i]!r} has a repeated time {time[i]}")
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "signals", tuple(self.signals))
        object.__setattr__(self, "_starts", starts)

    # -- constructors ----------------------------------------------------------------------

    @classmethod
    def from_columns(
        cls,
        units: Sequence | np.ndarray,
        time: Sequence | np.ndarray,
        signals: Mapping[str, Sequence[float] | np.ndarray],
        description: str = "",
    ) -> RunToFailureData:
        """Build from parallel columns: unit ids, times and one array per named signal."""
        names = tuple(signals)
        values = np.column_stack(
            [np.asarray(signals[n], dtype=np.float64) for n in names]
        )
        return cls(np.asarray(units), np.asarray(time), values, names, description)

    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping[str, object]],
        unit_key: str = "unit",
        time_key: str = "time",
        signals: Sequence[str] | None = None,
        description: str = "",
    ) -> RunToFailureData:
        """Build from rows such as ``{"unit": "m1", "time": 3, "vib_rms": 2.1, ...}``.

        ``signals`` defaults to every other key of the first row.
        """
        rows = list(records)
        if not rows:
            raise ValueError("no records")
        names = (
            tuple(signals)
            if signals is not None
            else tuple(k for k in rows[0] if k not in (unit_key, time_key))
        )
        try:
            units = np.array([r[unit_key] for r in rows])
            time = np.array([float(r[time_key]) for r in rows])  # type: ignore[arg-type]
            values = np.array([[float(r[n]) for n in names] for r in rows])  # type: ignore[arg-type]
        except KeyError as exc:
            raise ValueError(f"record without key {exc.args[0]!r}") from exc
        return cls(
            units, time, values.reshape(len(rows), len(names)), names, description
        )

    @classmethod
    def from_histories(
        cls,
        histories: Mapping[object, Mapping[str, Sequence[float] | np.ndarray]],
        time_key: str = "time",
        description: str = "",
    ) -> RunToFailureData:
        """Build from ``{unit: {"time": [...], "signal": [...], ...}}``.

        Without a ``time_key`` entry a unit's rows are numbered 1, 2, 3, ...
        """
        names: tuple[str, ...] | None = None
        units, times, blocks = [], [], []
        for unit, hist in histories.items():
            these = tuple(k for k in hist if k != time_key)
            if names is None:
                names = these
            elif set(these) != set(names):
                raise ValueError(
                    f"unit {unit!r} has signals {sorted(these)}, expected {sorted(names)}"
                )
            block = np.column_stack(
                [np.asarray(hist[n], dtype=np.float64) for n in names]
            )
            t = (
                np.asarray(hist[time_key], dtype=np.float64)
                if time_key in hist
                else np.arange(1, len(block) + 1, dtype=np.float64)
            )
            units.append(np.full(len(block), unit, dtype=object))
            times.append(t)
            blocks.append(block)
        if names is None:
            raise ValueError("no histories")
        unit_arr = np.concatenate(units)
        if all(isinstance(u, (int, np.integer)) for u in histories):
            unit_arr = unit_arr.astype(np.int64)
        else:
            unit_arr = unit_arr.astype(str)
        return cls(
            unit_arr, np.concatenate(times), np.vstack(blocks), names, description
        )

    # -- views -----------------------------------------------------------------------------

    @property
    def unit_ids(self) -> np.ndarray:
        """The distinct units, sorted."""
        return self.units[self._starts]

    def unit_bounds(self) -> list[tuple[int, int]]:
        """(start, stop) row range of every unit, in ``unit_ids`` order."""
        stops = np.r_[self._starts[1:], len(self.units)]
        return list(zip(self._starts.tolist(), stops.tolist()))

    def rul(self) -> np.ndarray:
        """True (uncapped) remaining useful life of every row: last time of its unit - its time."""
        out = np.empty(len(self.time))
        for start, stop in self.unit_bounds():
            out[start:stop] = self.time[stop - 1] - self.time[start:stop]
        return out

    def select_units(self, unit_ids: Iterable[object]) -> RunToFailureData:
        """Only the rows of the given units."""
        wanted = np.isin(self.units, np.asarray(list(unit_ids)))
        if not wanted.any():
            raise ValueError("none of the requested units is present")
        return RunToFailureData(
            self.units[wanted],
            self.time[wanted],
            self.values[wanted],
            self.signals,
            self.description,
        )

    def select_signals(self, names: Sequence[str]) -> np.ndarray:
        """The value columns of the named signals, in that order."""
        index = {n: i for i, n in enumerate(self.signals)}
        missing = [n for n in names if n not in index]
        if missing:
            raise ValueError(
                f"signals {missing} not in the data (has {list(self.signals)})"
            )
        return self.values[:, [index[n] for n in names]]

    def __len__(self) -> int:
        return len(self.units)


def split_units(
    unit_ids: Sequence[object] | np.ndarray,
    fractions: Sequence[float],
    seed: int,
) -> list[np.ndarray]:
    """Shuffle the units and cut them into groups of the given fractions (the rest last).

    Splitting by unit, never by row, keeps rows of one unit (strongly correlated) from
    appearing on both sides of a validation.
    """
    ids = np.array(sorted(set(np.asarray(unit_ids).tolist())))
    rng = np.random.default_rng(seed)
    ids = ids[rng.permutation(len(ids))]
    sizes = [round(f * len(ids)) for f in fractions]
    if sum(sizes) >= len(ids) or any(s < 1 for s in sizes):
        raise ValueError(
            f"cannot split {len(ids)} units into fractions {list(fractions)} and a non-empty rest"
        )
    groups, at = [], 0
    for s in sizes:
        groups.append(ids[at : at + s])
        at += s
    groups.append(ids[at:])
    return groups
