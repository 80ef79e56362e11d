"""``manage.py backup --out FOLDER``: database dump, model artifacts, signing key, broker files."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from web.backup import BackupError, create_backup, describe


class Command(BaseCommand):
    help = "Back up the platform into a new folder (README: Backup and restore)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--out", required=True, help="a new (or empty) folder")

    def handle(self, *args, **opts) -> None:
        try:
            manifest = create_backup(Path(opts["out"]))
        except (BackupError, OSError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(describe(manifest))
