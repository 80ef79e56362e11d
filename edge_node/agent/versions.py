"""Downgrade protection: which model versions are older than the one a node runs.

Versions compare by their runs of digits and of other characters, digits as numbers:
``"2" < "10"``, ``"1.9" < "1.10"``, ``"3" < "3-int8"`` (a quantized variant of version 3 counts as
newer than its float original). A deploy of an older version, or of a different artifact under
the running version's name, is refused unless the command is an explicit rollback signed by
the platform (``downgrade: true`` inside a signed command). No Django here.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from . import const
from .models import ModelError, current_version

_RUNS = re.compile(r"\d+|\D+")
MANIFEST_FILE = "manifest.json"


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key: numbers compare as numbers and sort before text at the same position."""
    return tuple((0, int(run)) if run.isdigit() else (1, run) for run in _RUNS.findall(version))


def compare_versions(a: str, b: str) -> int:
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)


def running_artifact(models_dir: Path, name: str) -> tuple[str, str] | None:
    """(version, sha256 of its model.onnx) of what the node runs for model ``name``, or None."""
    try:
        version = current_version(models_dir, name)
    except ModelError:
        return None
    folder = Path(models_dir) / name / version
    try:
        return version, str(json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # a seed model copied by hand has no manifest: hash its file
    try:
        return version, hashlib.sha256((folder / const.MODEL_FILE).read_bytes()).hexdigest()
    except OSError:
        return None


def downgrade_of(models_dir: Path, name: str, version: str, sha256: str) -> str | None:
    """Why installing ``name@version`` (file ``sha256``) would be a downgrade, or None."""
    running = running_artifact(models_dir, name)
    if running is None:
        return None
    current, current_sha = running
    order = compare_versions(version, current)
    if order < 0:
        return f"{name}@{version} is older than the running {current}"
    if order == 0 and sha256 != current_sha:
        return f"{name}@{version} is a different artifact than the running {current} of the same version"
    return None
