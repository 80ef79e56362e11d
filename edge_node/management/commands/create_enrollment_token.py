"""``manage.py create_enrollment_token SITE_KEY [--node-id ID] [--ttl-hours H] [--url URL]``:
print a one-time enrollment token (and the gateway's command line). Shown once."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from edge_node.services import create_enrollment_token
from twins.models import Site


class Command(BaseCommand):
    help = "Create a one-time enrollment token for a site and print it (it is stored only as a hash)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("site", help="site key")
        parser.add_argument("--node-id", default="", help="node id to give the node (default: generated)")
        parser.add_argument("--tags", default="")
        parser.add_argument("--ttl-hours", type=int, default=None, help="default: ENROLLMENT_TOKEN_TTL_S")
        parser.add_argument("--url", default="", help="the platform URL for the printed command (default: ENROLLMENT_PUBLIC_URL)")

    def handle(self, *args, **opts) -> None:
        site = Site.objects.filter(key=opts["site"]).first()
        if site is None:
            raise CommandError(f"no site with key {opts['site']!r}")
        ttl = opts["ttl_hours"] * 3600 if opts["ttl_hours"] else None
        if ttl is not None and ttl <= 0:
            raise CommandError("--ttl-hours must be positive")
        token, plaintext = create_enrollment_token(site, None, node_id=opts["node_id"], tags=opts["tags"], ttl_s=ttl)
        url = opts["url"] or settings.ENROLLMENT_PUBLIC_URL or "https://<platform>"
        self.stdout.write(plaintext)
        self.stderr.write(f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC; on the gateway:\n  python -m edge_node.agent enroll --url {url} --token {plaintext} --config node.toml")
