"""Model artifacts every web process, Celery worker and twin refresh can read, on any host.

Artifacts are written to AIOT_VAR_DIR/models/ as before (the agents' downloads and the ONNX
loaders read files) and, in the same transaction as the row that names them, into the
database (StoredFile): files of a few MB, so the default needs no new service, and a backup
of the database holds them too. A process that does not find the file under its own
AIOT_VAR_DIR (a second host, a fresh container) writes it there from the database first and
checks its SHA-256, so every process serves the same bytes and verifies the same signature.
Past a few hundred MB per artifact, put AIOT_VAR_DIR/models on object storage instead
(docs/SCALING.md).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from django.conf import settings

from web.models import StoredFile
from web.var_paths import ANCHOR, var_path

log = logging.getLogger(__name__)


class ArtifactMissing(FileNotFoundError):
    """Neither this host's AIOT_VAR_DIR nor the database holds the artifact."""


def keep_file(name: str, data: bytes) -> None:
    """Keep ``data`` under ``name`` (call inside the transaction that creates the row naming it)."""
    StoredFile.objects.update_or_create(name=name, defaults={"data": data, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})


def keep_directory(name: str, folder: Path) -> None:
    """Keep every file of an artifact directory, as ``<name>/<file>``."""
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        keep_file(f"{name}/{path.name}", path.read_bytes())


def local_file(name: str) -> Path:
    """The artifact file named ``name`` on this host, written from the database if missing."""
    path = var_path(name)
    if path.is_file():
        return path
    path = _local_target(name)
    if path.is_file():
        return path
    row = StoredFile.objects.filter(name=name).values_list("data", "sha256").first()
    if row is None:
        raise ArtifactMissing(f"{name}: not under AIOT_VAR_DIR and not in the database")
    _materialize(path, bytes(row[0]), row[1], name)
    return path


def local_directory(name: str) -> Path:
    """The artifact directory named ``name`` on this host, its files written from the database if missing."""
    folder = var_path(name)
    if not folder.is_dir():
        folder = _local_target(name)
    rows = StoredFile.objects.filter(name__startswith=f"{name}/").values_list("name", "sha256")
    for file_name, sha in rows:
        path = folder / file_name[len(name) + 1 :]
        if not path.is_file():
            data = StoredFile.objects.filter(name=file_name).values_list("data", flat=True).get()
            _materialize(path, bytes(data), sha, file_name)
    if not folder.is_dir():
        raise ArtifactMissing(f"{name}: not under AIOT_VAR_DIR and not in the database")
    return folder


def _local_target(name: str) -> Path:
    """Where this host keeps an artifact named by another host's path: under its own
    AIOT_VAR_DIR, from the ``models/`` folder down (as web/var_paths.py finds it later)."""
    var, path = Path(settings.VAR_DIR), Path(name)
    if not path.is_absolute():
        return var / path
    parts = path.parts
    for i, part in enumerate(parts):
        if part == ANCHOR:
            return var.joinpath(*parts[i:])
    return var / ANCHOR / "imported" / hashlib.sha256(name.encode()).hexdigest()[:16] / path.name


def _materialize(path: Path, data: bytes, sha256: str, name: str) -> None:
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ArtifactMissing(f"{name}: the database copy does not match its SHA-256")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)  # atomic: two processes materializing at once write the same bytes
    log.info("artifact %s written from the database to %s", name, path)
