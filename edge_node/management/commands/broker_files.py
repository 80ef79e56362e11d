"""``manage.py broker_files [--password-file P --acl-file A] [--no-reload]``: (re)write Mosquitto's
password and ACL files from the node registry and reload the broker."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from edge_node.broker_acl import BrokerFilesError
from edge_node.services import write_broker_files


class Command(BaseCommand):
    help = "Write Mosquitto's password and ACL files from the registry (MQTT_PASSWORD_FILE, MQTT_ACL_FILE) and reload it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--password-file", help="default: MQTT_PASSWORD_FILE")
        parser.add_argument("--acl-file", help="default: MQTT_ACL_FILE")
        parser.add_argument("--no-reload", action="store_true", help="write the files only (no SIGHUP / reload command)")

    def handle(self, *args, **opts) -> None:
        try:
            note = write_broker_files(password_file=opts["password_file"], acl_file=opts["acl_file"], reload=not opts["no_reload"], actor="manage.py broker_files")
        except (BrokerFilesError, OSError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(note)
