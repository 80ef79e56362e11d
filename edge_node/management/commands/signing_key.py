"""``manage.py signing_key``: the model-signing keys.

Without options: make the first key if there is none (never replaces one), then print the
active key. Idempotent: safe in every deployment's start-up.

``--list``: every key with its id and state. ``--rotate [--revoke KEY_ID ...] [--revoke-previous]
[--reason TEXT]``: a new active key (audited); nodes get the new keyring through a signed
``keyring`` command (edge_node/key_rotation.py), offline ones when they return. Revoke a key
only when it is compromised or retired: its signatures are refused from then on, by the
platform and by every node that got the keyring."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from edge_node import signing_keys
from edge_node.key_rotation import RotationError, keyring_rows, rotate_signing_keys


class Command(BaseCommand):
    help = "Create the first model-signing key if there is none and print the active one; --list; --rotate [--revoke ID]."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--list", action="store_true", help="list every key (id, state, created, revoked)")
        parser.add_argument("--rotate", action="store_true", help="make a new active key; nodes get it by a signed command")
        parser.add_argument("--revoke", action="append", default=[], metavar="KEY_ID", help="with --rotate: revoke this key (repeatable)")
        parser.add_argument("--revoke-previous", action="store_true", help="with --rotate: revoke the key that was active")
        parser.add_argument("--reason", default="", help="with --rotate: why (kept in the audit log)")
        parser.add_argument("--actor", default="manage.py", help="who to record in the audit log")

    def handle(self, *args, **opts) -> None:
        if (opts["revoke"] or opts["revoke_previous"]) and not opts["rotate"]:
            raise CommandError("--revoke and --revoke-previous go with --rotate (a revocation always brings a new active key)")
        if opts["rotate"]:
            try:
                new = rotate_signing_keys(revoke=opts["revoke"], revoke_previous=opts["revoke_previous"], reason=opts["reason"],
                                          actor=opts["actor"])
            except RotationError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"rotated: {new.key_id} is the active model-signing key (keyring v{signing_keys.keyring_version()}); "
                              "nodes get it from the rollout listener")
        if opts["list"] or opts["rotate"]:
            for row in keyring_rows():
                revoked = f" revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else ""
                self.stdout.write(f"{row['key_id']}  {row['state']:<8} created {row['created_at']:%Y-%m-%d %H:%M} by {row['created_by'] or '?'}{revoked}")
            return
        from django.db import connection

        from edge_node import const
        from edge_node.models import SigningKey

        if SigningKey._meta.db_table not in connection.introspection.table_names():
            # Before the first migrate (compose may run both at once): make the key file only; it
            # becomes the first key of the database's keyring on first use.
            path = signing_keys.signing_key_path()
            existed = path.exists()
            if not existed:
                signing_keys.write_new_key(path)
            self.stdout.write(f"{'kept' if existed else 'made'} model-signing key file {path} (imported into the database on first use)")
            return
        existed = SigningKey.objects.filter(state=const.KEY_ACTIVE).exists()
        if not existed and not signing_keys.signing_key_path().exists():
            signing_keys.write_new_key(signing_keys.signing_key_path())  # also where MODEL_SIGNING_KEY_FILE names it
        key = signing_keys.active_key()  # the first one, imported from the key file
        where = "in the database" if existed else f"from {signing_keys.signing_key_path()}"
        self.stdout.write(f"{'kept' if existed else 'made'} model-signing key {key.key_id} {where}; public key {key.public_key}")
