"""Files under AIOT_VAR_DIR that the database names by their path (model artifacts).

The database keeps the absolute path it was written with. After a restore into another
folder (README: Backup and restore) ``var_path`` finds the same file under the current
AIOT_VAR_DIR, from the ``models/`` folder down (the old folder may be gone, or still be there
on the same host: this installation's copy is used either way). What is read there is
checked as always (the registry's sha256 and signature, the RUL artifact's sha256), so a
wrong file is refused, never used.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

ANCHOR = "models"  # every path-named file lives under AIOT_VAR_DIR/models/


def var_path(stored: str | Path) -> Path:
    path = Path(stored)
    var = Path(settings.VAR_DIR)
    if not path.is_absolute():
        return var / path
    if path.is_relative_to(var):
        return path
    # Written under another AIOT_VAR_DIR (a restored backup): this installation's copy wins.
    parts = path.parts
    for i, part in enumerate(parts):
        if part == ANCHOR:
            moved = var.joinpath(*parts[i:])
            if moved.exists():
                return moved
    return path
