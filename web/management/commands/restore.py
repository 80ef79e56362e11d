"""``manage.py restore --from FOLDER``: into the EMPTY database and folder the settings name,
then check the platform is whole (signing key, model artifacts, RUL models, broker files)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from web.backup import BackupError, restore_backup


class Command(BaseCommand):
    help = "Restore a backup into a new database and AIOT_VAR_DIR, then verify it (README: Backup and restore)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from", dest="source", required=True, help="a folder made by manage.py backup")

    def handle(self, *args, **opts) -> None:
        try:
            report = restore_backup(Path(opts["source"]))
        except (BackupError, OSError, KeyError, ValueError) as exc:
            raise CommandError(f"restore failed: {exc}") from None
        self.stdout.write(json.dumps(report.as_json()))
