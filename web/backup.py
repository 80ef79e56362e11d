"""Backup and restore of a deployment (README: Backup and restore; deploy/BACKUP.md).

A backup is a folder: ``database.dump`` (pg_dump, custom format), ``files.tar.gz`` (model
artifacts under AIOT_VAR_DIR/models, the model-signing key, the broker's password and ACL
files) and ``manifest.json`` (what is inside, with sha256 sums and the signing key's public
key). A restore goes into an EMPTY database and folder -- the ones DATABASE_URL and
AIOT_VAR_DIR name -- and then checks that the platform is whole.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

DUMP = "database.dump"
FILES = "files.tar.gz"
MANIFEST = "manifest.json"


class BackupError(RuntimeError):
    """A backup or restore step failed; the message says which and why."""


def _pg_env_and_args() -> tuple[dict[str, str], list[str]]:
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        raise BackupError("backup and restore handle PostgreSQL (DATABASE_URL=postgres://...); with SQLite, copy the file while the platform is stopped")
    env = dict(os.environ)
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    for option, variable in (("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT"), ("connect_timeout", "PGCONNECT_TIMEOUT")):
        if db.get("OPTIONS", {}).get(option):
            env[variable] = str(db["OPTIONS"][option])
    args = ["--dbname", db["NAME"]]
    for flag, key in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER")):
        if db.get(key):
            args += [flag, str(db[key])]
    return env, args


def _run(argv: list[str], env: dict[str, str], what: str) -> str:
    if shutil.which(argv[0]) is None:
        raise BackupError(f"{what}: {argv[0]} is not installed (Debian: postgresql-client, the server's major version or newer)")
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{what} failed ({result.returncode}): {result.stderr.strip()[-1500:]}")
    return result.stdout


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_members() -> dict[str, Path]:
    """Archive name -> file on this host."""
    from edge_node.signing_keys import signing_key_path

    # The first model-signing key's file, when this host has it; every key (rotated ones too) is in
    # the database dump, encrypted under MODEL_SIGNING_KEY_PASSWORD (edge_node/signing_keys.py).
    members = {"keys/model-signing.pem": signing_key_path()} if signing_key_path().is_file() else {}
    for name, path in (("broker/passwd", settings.MQTT_PASSWORD_FILE), ("broker/acl", settings.MQTT_ACL_FILE)):
        if path and Path(path).is_file():
            members[name] = Path(path)
    models = Path(settings.VAR_DIR) / "models"
    if models.is_dir():
        for path in sorted(p for p in models.rglob("*") if p.is_file()):
            members[f"models/{path.relative_to(models)}"] = path
    return members


def create_backup(out: Path) -> dict[str, Any]:
    """Write a backup into ``out`` (created; must be empty). Returns the manifest."""
    from edge_node.signing_keys import public_key_base64

    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise BackupError(f"{out} is not empty: a backup goes into a new folder")
    signing_public_key = public_key_base64()  # before the dump: a first key made now must be in it
    env, args = _pg_env_and_args()
    _run(["pg_dump", "--format=custom", "--no-owner", "--file", str(out / DUMP), *args], env, "pg_dump")
    members = _file_members()
    with tarfile.open(out / FILES, "w:gz") as tar:
        for name, path in members.items():
            tar.add(path, arcname=name, recursive=False)
    manifest = {
        "created_at": datetime.now(UTC).isoformat(), "database": settings.DATABASES["default"]["NAME"],
        "signing_public_key": signing_public_key, "files": sorted(members),
        "sha256": {DUMP: _sha256(out / DUMP), FILES: _sha256(out / FILES)},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


@dataclass
class RestoreReport:
    tables: int
    files: int
    models_verified: int
    models_failed: list[str]
    rul_models_loaded: int
    nodes: int
    broker_files: str

    def as_json(self) -> dict[str, Any]:
        return self.__dict__


def _database_is_empty() -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        return cur.fetchone()[0] == 0


def _extract(tar_path: Path) -> int:
    """Files to where this host's settings want them; an existing different signing key is never overwritten."""
    from edge_node.signing_keys import signing_key_path

    targets = {"keys/model-signing.pem": signing_key_path()}
    count = 0
    with tarfile.open(tar_path, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile() or member.name.startswith("/") or ".." in Path(member.name).parts:
                continue
            if member.name.startswith("models/"):
                target = Path(settings.VAR_DIR) / member.name
            elif member.name in targets:
                target = targets[member.name]
            else:
                continue  # broker files: written afresh from the restored registry
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if target.exists() and target.read_bytes() != data:
                raise BackupError(f"{target} exists with other content: restore into a new AIOT_VAR_DIR / MODEL_SIGNING_KEY_FILE")
            target.parent.mkdir(parents=True, exist_ok=True)
            mode = 0o600 if member.name.startswith("keys/") else 0o644
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            count += 1
    return count


def restore_backup(source: Path) -> RestoreReport:
    """Restore ``source`` into the (empty) database and folder of this host's settings."""
    manifest = json.loads((source / MANIFEST).read_text())
    for name, digest in manifest["sha256"].items():
        if _sha256(source / name) != digest:
            raise BackupError(f"{source / name} does not match its sha256 in the manifest: the backup is damaged")
    if not _database_is_empty():
        raise BackupError(f"the database {settings.DATABASES['default']['NAME']} is not empty: restore into a new, empty database")
    env, args = _pg_env_and_args()
    listing = _run(["pg_restore", "--list", str(source / DUMP)], env, "pg_restore --list")
    timescale = "EXTENSION - timescaledb" in listing
    if timescale:  # TimescaleDB's documented way: pre_restore, pg_restore, post_restore
        with connection.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            cur.execute("SELECT timescaledb_pre_restore()")
    connection.close()
    _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", *args, str(source / DUMP)], env, "pg_restore")
    if timescale:
        with connection.cursor() as cur:
            cur.execute("SELECT timescaledb_post_restore()")
    files = _extract(source / FILES)
    return _check_whole(manifest, files)


def _check_whole(manifest: dict[str, Any], files: int) -> RestoreReport:
    from edge_node.models import EdgeNode
    from edge_node.rollouts.models import ModelArtifact
    from edge_node.rollouts.registry import verify_stored
    from edge_node.services import broker_files_configured, write_broker_files
    from edge_node.signing_keys import public_key_base64
    from twins.models import RulModel
    from twins.rul_registry import predictor_for

    if public_key_base64() != manifest["signing_public_key"]:
        raise BackupError("the restored model-signing key is not the one of the backup: gateways would refuse new models")
    # Intact, by whichever key signed it: a model signed with a since revoked key is history, not damage.
    failed = [m.label for m in ModelArtifact.objects.all() if not verify_stored(m, include_revoked=True)]
    verified = ModelArtifact.objects.count() - len(failed)
    loaded = 0
    for model in RulModel.objects.filter(is_active=True):
        predictor_for(model)  # raises when the artifact is missing or altered
        loaded += 1
    note = write_broker_files(actor="manage.py restore", reload=False) if broker_files_configured() else "broker files not configured"
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        tables = cur.fetchone()[0]
    if failed:
        raise BackupError(f"restored model artifacts fail verification: {', '.join(failed)}")
    return RestoreReport(tables=tables, files=files, models_verified=verified, models_failed=failed, rul_models_loaded=loaded,
                         nodes=EdgeNode.objects.filter(revoked_at__isnull=True).count(), broker_files=note)


def describe(manifest: dict[str, Any]) -> str:
    buf = io.StringIO()
    buf.write(f"backup of {manifest['database']} at {manifest['created_at']}: {len(manifest['files'])} file(s), ")
    buf.write(f"signing key {manifest['signing_public_key'][:12]}...")
    return buf.getvalue()
