"""``manage.py signing_key``: make the model-signing key if there is none (never replaces one),
then print where it is and its public key. Idempotent: safe in every deployment's start-up.

Replacing the key would make every gateway refuse new models (they pin the public key they
got at enrollment), so an existing file is always kept; back it up (README: Backup)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from edge_node import signing_keys


class Command(BaseCommand):
    help = "Create the Ed25519 model-signing key (MODEL_SIGNING_KEY_FILE) if it does not exist; print its public key."

    def handle(self, *args, **opts) -> None:
        path = signing_keys.signing_key_path()
        existed = path.exists()
        if not existed:
            signing_keys.write_new_key(path)
        self.stdout.write(f"{'kept' if existed else 'made'} model-signing key {path}; public key {signing_keys.public_key_base64()}")
