"""Reading NASA C-MAPSS files (train_FDxxx / test_FDxxx / RUL_FDxxx).

Format: one row per operating cycle, 26 whitespace-separated numbers: unit, cycle,
3 operational settings, 21 sensors. Bad input is answered with the file and line named.
"""

from __future__ import annotations

import gzip
import zlib
from os import PathLike
from pathlib import Path

import numpy as np

from .const import CMAPSS_COLUMNS, CMAPSS_SIGNALS
from .data import RunToFailureData


class CmapssFormatError(ValueError):
    """A file that is not in C-MAPSS format; the message names the file and line."""

    def __init__(
        self, path: str | PathLike[str], line: int | None, reason: str
    ) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = (
            f"{Path(path).name} line {line}" if line is not None else Path(path).name
        )
        super().__init__(f"{where}: {reason}")


def _read_lines(path: str | PathLike[str]) -> list[str]:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CmapssFormatError(
            path, None, f"cannot read file ({exc.strerror})"
        ) from exc
    if str(path).endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise CmapssFormatError(path, None, f"not a gzip file ({exc})") from exc
    try:
        return raw.decode("ascii").splitlines()
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CmapssFormatError(
            path, line, "not a text file of numbers (non-ASCII byte)"
        ) from exc


def read_cmapss_table(path: str | PathLike[str]) -> np.ndarray:
    """The file as a float array [rows, 26], checking every line."""
    rows: list[list[float]] = []
    last_unit, last_cycle = None, None
    for number, text in enumerate(_read_lines(path), start=1):
        fields = text.split()
        if not fields:
            continue  # blank lines (a trailing newline, a stray empty line) carry no data
        if len(fields) != CMAPSS_COLUMNS:
            raise CmapssFormatError(
                path,
                number,
                f"expected {CMAPSS_COLUMNS} numeric columns, got {len(fields)}",
            )
        try:
            row = [float(f) for f in fields]
        except ValueError:
            bad = next(f for f in fields if not _is_float(f))
            raise CmapssFormatError(
                path, number, f"not a number: {bad[:40]!r}"
            ) from None
        if not all(np.isfinite(row)):
            raise CmapssFormatError(path, number, "non-finite value (nan or inf)")
        unit, cycle = row[0], row[1]
        if unit != int(unit) or cycle != int(cycle) or unit < 1 or cycle < 1:
            raise CmapssFormatError(
                path,
                number,
                f"unit and cycle must be positive integers, got {fields[0]} {fields[1]}",
            )
        if unit == last_unit and cycle <= last_cycle:  # type: ignore[operator]
            raise CmapssFormatError(
                path,
                number,
                f"cycle {int(cycle)} of unit {int(unit)} does not follow cycle {int(last_cycle)}",  # type: ignore[arg-type]
            )
        last_unit, last_cycle = unit, cycle
        rows.append(row)
    if not rows:
        raise CmapssFormatError(path, None, "no data rows")
    return np.asarray(rows, dtype=np.float64)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_cmapss(path: str | PathLike[str]) -> RunToFailureData:
    """A C-MAPSS file as run-to-failure histories with signals setting_1..3, sensor_1..21.

    For a training file every unit ends at failure; a test file gives truncated histories
    (their true RUL is in the matching RUL_FDxxx file, see ``read_cmapss_truth``).
    """
    table = read_cmapss_table(path)
    return RunToFailureData(
        units=table[:, 0].astype(np.int64),
        time=table[:, 1],
        values=table[:, 2:],
        signals=CMAPSS_SIGNALS,
        description=f"C-MAPSS file {Path(path).name}: {len(np.unique(table[:, 0]))} units, {len(table)} cycles",
    )


def read_cmapss_truth(path: str | PathLike[str]) -> np.ndarray:
    """True RUL of each test unit, one non-negative number per line, in unit order."""
    values: list[float] = []
    for number, text in enumerate(_read_lines(path), start=1):
        fields = text.split()
        if not fields:
            continue
        if len(fields) != 1:
            raise CmapssFormatError(
                path,
                number,
                f"expected 1 number (the true RUL), got {len(fields)} columns",
            )
        if (
            not _is_float(fields[0])
            or not np.isfinite(float(fields[0]))
            or float(fields[0]) < 0
        ):
            raise CmapssFormatError(
                path, number, f"not a non-negative number: {fields[0][:40]!r}"
            )
        values.append(float(fields[0]))
    if not values:
        raise CmapssFormatError(path, None, "no data rows")
    return np.asarray(values)


def write_cmapss(path: str | PathLike[str], data: RunToFailureData) -> None:
    """Write histories with the C-MAPSS signals back in C-MAPSS format (units renumbered 1..n)."""
    values = data.select_signals(list(CMAPSS_SIGNALS))
    renumber = {u: i for i, u in enumerate(data.unit_ids.tolist(), start=1)}
    with open(path, "w", encoding="ascii") as out:
        out.writelines(
            f"{renumber[unit]} {int(cycle)} "
            + " ".join(f"{v:.10g}" for v in row)
            + "\n"
            for unit, cycle, row in zip(data.units.tolist(), data.time.tolist(), values)
        )
