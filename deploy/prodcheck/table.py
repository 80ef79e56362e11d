"""The README's production table: the one place the production commands are written down.

``production_table()`` reads it; the production check runs those commands, and the tests of
compose.yaml and the systemd units compare theirs with them. A command may hold ``${VAR}``
(from the deployment's environment, expanded by systemd, compose and the check alike) and
``<placeholder>`` (one word each deployment chooses, such as ``<cores>``).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
HEADING = "## Running in production"
ROW = re.compile(r"^\|\s*(?P<process>[^|]+?)\s*\|\s*`(?P<command>[^`]+)`\s*\|\s*(?P<count>[^|]+?)\s*\|\s*$")
PLACEHOLDER = re.compile(r"<[a-z][^<>]*>")
VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


@dataclass(frozen=True)
class Process:
    name: str  # the table's first column, e.g. "web (HTTPS + WebSockets)"
    command: str
    count: str  # "1", "1+", "exactly 1"

    @property
    def key(self) -> str:
        """A short name: the first word(s) before a parenthesis, lower case, dashes."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.split("(")[0].strip().lower()).strip("-")

    @property
    def long_running(self) -> bool:
        return "once" not in self.name

    def argv(self, env: dict[str, str], placeholders: dict[str, str] | None = None) -> list[str]:
        """The command as an argument list, ``${VAR}`` from ``env`` and ``<x>`` from ``placeholders``."""
        return shlex.split(expand(self.command, env, placeholders))

    def matches(self, command: str) -> bool:
        """Whether ``command`` (from compose.yaml or a unit file) is this one, with any one word
        in place of each ``<placeholder>``."""
        parts = PLACEHOLDER.split(" ".join(self.command.split()))
        pattern = re.escape(parts[0]) + "".join(r"\S+" + re.escape(p) for p in parts[1:])
        return re.fullmatch(pattern, " ".join(command.split())) is not None


def expand(command: str, env: dict[str, str], placeholders: dict[str, str] | None = None) -> str:
    def var(m: re.Match) -> str:
        if m.group(1) not in env:
            raise KeyError(f"the command {command!r} needs {m.group(1)} in the environment")
        return env[m.group(1)]

    def hole(m: re.Match) -> str:
        if not placeholders or m.group(0) not in placeholders:
            raise KeyError(f"the command {command!r} needs a value for {m.group(0)}")
        return placeholders[m.group(0)]

    return PLACEHOLDER.sub(hole, VARIABLE.sub(var, command))


def production_table(readme: Path = README) -> list[Process]:
    """The rows of the first table under the production heading, in order."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    try:
        start = lines.index(HEADING)
    except ValueError:
        raise SystemExit(f"{readme}: no {HEADING!r} section") from None
    rows: list[Process] = []
    in_table = False
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            in_table = True
            m = ROW.match(line)
            if m:
                rows.append(Process(m["process"], m["command"], m["count"]))
        elif in_table:
            break
    if not rows:
        raise SystemExit(f"{readme}: the production section has no table of `commands`")
    return rows


def by_key(rows: list[Process]) -> dict[str, Process]:
    return {row.key: row for row in rows}
