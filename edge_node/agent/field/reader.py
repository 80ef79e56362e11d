"""Typed access to one table of a point map, with errors that name the file and line."""

from __future__ import annotations

from typing import Any

from .tomllines import LineIndex, Path, describe


class MapError(ValueError):
    """A point map is unusable; the message says where (file:line) and why."""


class Reader:
    def __init__(self, table: Any, path: Path, file: str, lines: LineIndex) -> None:
        self.table = table if isinstance(table, dict) else {}
        self.path = path
        self.file = file
        self.lines = lines
        self.used: set[str] = set()

    def where(self, key: str | None = None) -> str:
        path = self.path if key is None else (*self.path, key)
        line = self.lines.line_of(path)
        return f"{self.file}:{line}" if line is not None else self.file

    def fail(self, key: str | None, why: str) -> MapError:
        path = self.path if key is None else (*self.path, key)
        label = describe(path)
        return MapError(f"{self.where(key)}: {label + ': ' if label else ''}{why}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, *, required: bool = False) -> Any:
        self.used.add(key)
        if key not in self.table:
            if required:
                raise self.fail(key, "is required")
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(key, f"must be {names}, got {type(value).__name__} {value!r}")
        return value

    def positive(self, key: str, default: float) -> float:
        value = self.get(key, float, default)
        if value <= 0:
            raise self.fail(key, f"must be > 0, got {value}")
        return value

    def integer(self, key: str, default: int | None, lo: int, hi: int) -> Any:
        value = self.get(key, int, default)
        if value is not None and not lo <= value <= hi:
            raise self.fail(key, f"must be between {lo} and {hi}, got {value}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: Any = None, *, required: bool = False) -> Any:
        value = self.get(key, str, default, required=required)
        if value is not None and value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def check_unknown(self) -> None:
        extra = sorted(set(self.table) - self.used)
        if extra:
            raise self.fail(extra[0], "unknown key (check its spelling)")
