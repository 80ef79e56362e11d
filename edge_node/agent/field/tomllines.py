"""Line numbers of the keys in a TOML file, so point-map errors can say ``node.toml:42``.

``tomllib`` gives values without positions. This scanner reads the text once and records the
line of every table header (``[[devices]]``, ``[[devices.points]]``, ``[bacnet]``) and of every
``key = value`` line inside it, under the same path the parsed data has: ``("devices", 0,
"points", 3, "type")``. It is not a TOML parser: values spanning lines (arrays, multi-line
strings) are skipped over, and a key it cannot place falls back to its table's header line.
"""

from __future__ import annotations

import re

Path = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*(\]\]?)\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*(\.\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*)*=""")


def _segments(dotted: str) -> list[str]:
    out = []
    for part in re.findall(r"""("[^"]*"|'[^']*'|[^.]+)""", dotted):
        part = part.strip()
        out.append(part[1:-1] if part[:1] in "\"'" else part)
    return out


class LineIndex:
    """path -> 1-based line number."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Path, int] = {}
        counts: dict[Path, int] = {}
        current: Path = ()
        depth = 0  # open [ / { of a value spanning lines
        in_multiline: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_multiline is not None:
                if in_multiline in line:
                    in_multiline = None
                continue
            if depth > 0:
                depth += _balance(line)
                continue
            header = _HEADER.match(line)
            if header and header.group(1) == header.group(3)[::-1].replace("]", "["):
                names = _segments(header.group(2))
                parent = self._resolve(names[:-1], counts)
                if header.group(1) == "[[":
                    key = (*parent, names[-1])
                    index = counts.get(key, -1) + 1
                    counts[key] = index
                    current = (*key, index)
                else:
                    current = (*parent, names[-1])
                self.lines.setdefault(current, number)
                continue
            key = _KEY.match(line)
            if key:
                dotted = line[: key.end() - 1]
                names = _segments(dotted)
                self.lines.setdefault((*current, *names), number)
                value = line[key.end():]
                for quote in ('"""', "'''"):
                    if value.count(quote) == 1:
                        in_multiline = quote
                depth = max(0, _balance(value))

    @staticmethod
    def _resolve(names: list[str], counts: dict[Path, int]) -> Path:
        """A dotted header's parent path, with the current index of every array of tables in it."""
        path: Path = ()
        for name in names:
            path = (*path, name)
            if path in counts:
                path = (*path, counts[path])
        return path

    def line_of(self, path: Path) -> int | None:
        """The line of ``path`` or, failing that, of its nearest recorded parent."""
        for end in range(len(path), 0, -1):
            found = self.lines.get(tuple(path[:end]))
            if found is not None:
                return found
        return None


def _balance(text: str) -> int:
    """Brackets and braces opened minus closed, outside strings and comments."""
    depth = 0
    quote: str | None = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return depth


def describe(path: Path) -> str:
    """("devices", 0, "points", 3, "type") -> "devices[0].points[3].type"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out
