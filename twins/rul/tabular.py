"""Reading generic run-to-failure histories from CSV: a header, then unit, time and signals.

Example (a simulated pump fleet exported row by row, each unit ending at its failure)::

    unit,time,flow_m3h,vib_rms,temperature_c
    pump-1,0,402.1,2.3,41.0
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

from .data import RunToFailureData


class HistoryFormatError(ValueError):
    """A CSV history file that cannot be used; the message names the file and line."""

    def __init__(
        self, path: str | PathLike[str], line: int | None, reason: str
    ) -> None:
        self.path, self.line, self.reason = str(path), line, reason
        where = (
            f"{Path(path).name} line {line}" if line is not None else Path(path).name
        )
        super().__init__(f"{where}: {reason}")


def load_history_csv(
    path: str | PathLike[str],
    unit_col: str = "unit",
    time_col: str = "time",
    signals: Sequence[str] | None = None,
) -> RunToFailureData:
    """Run-to-failure histories from a CSV file with a header row.

    ``signals`` defaults to every column but the unit and time columns; all must be numeric.
    """
    try:
        handle = open(path, newline="", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise HistoryFormatError(
            path, None, f"cannot read file ({exc.strerror})"
        ) from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise HistoryFormatError(
                path, None, "empty file (expected a header row)"
            ) from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise HistoryFormatError(path, 1, f"unreadable header ({exc})") from exc
        for needed in (unit_col, time_col, *(signals or ())):
            if needed not in header:
                raise HistoryFormatError(
                    path, 1, f"no column {needed!r} in header {header}"
                )
        names = (
            list(signals)
            if signals is not None
            else [h for h in header if h not in (unit_col, time_col)]
        )
        if not names:
            raise HistoryFormatError(
                path, 1, "no signal columns besides the unit and time"
            )
        index = {h: i for i, h in enumerate(header)}
        units, times, rows = [], [], []
        line = 1
        try:
            for line, fields in enumerate(reader, start=2):
                if not fields or all(not f.strip() for f in fields):
                    continue
                if len(fields) != len(header):
                    raise HistoryFormatError(
                        path, line, f"expected {len(header)} columns, got {len(fields)}"
                    )
                units.append(fields[index[unit_col]].strip())
                times.append(_number(path, line, time_col, fields[index[time_col]]))
                rows.append([_number(path, line, n, fields[index[n]]) for n in names])
        except (csv.Error, UnicodeDecodeError) as exc:
            raise HistoryFormatError(path, line, f"unreadable row ({exc})") from exc
    if not rows:
        raise HistoryFormatError(path, None, "no data rows")
    try:
        return RunToFailureData.from_columns(
            units,
            times,
            {n: [r[j] for r in rows] for j, n in enumerate(names)},
            description=f"CSV file {Path(path).name}: {len(set(units))} units, {len(rows)} rows",
        )
    except ValueError as exc:
        raise HistoryFormatError(path, None, str(exc)) from exc


def _number(path: str | PathLike[str], line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise HistoryFormatError(
            path, line, f"column {column!r}: not a number: {text.strip()[:40]!r}"
        ) from None
    if not math.isfinite(value):
        raise HistoryFormatError(path, line, f"column {column!r}: non-finite value")
    return value
