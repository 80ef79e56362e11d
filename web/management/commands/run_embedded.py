"""python manage.py run_embedded: the whole platform in one process (what `make demo` runs)."""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from web.demo import DEMO_USERS
from web.embedded import EmbeddedStack

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run broker, ingest, Celery, simulated fleet and web server in one process until Ctrl-C."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--mqtt-port", type=int, default=settings.MQTT_EMBEDDED_PORT)
        parser.add_argument("--no-fleet", action="store_true", help="do not start the simulated fleet")
        parser.add_argument("--speedup", type=float, default=1.0, help="simulated fleet: time speed-up")

    def handle(self, *args, **opts) -> None:
        stack = EmbeddedStack(
            http_host=opts["host"], http_port=opts["port"], mqtt_port=opts["mqtt_port"],
            fleet=not opts["no_fleet"], fleet_speedup=opts["speedup"],
        )
        try:
            stack.start_background()
        except Exception as exc:
            stack.stop_all()
            self.stderr.write(f"could not start the embedded stack: {exc}")
            sys.exit(1)
        url = f"http://{opts['host']}:{opts['port']}/"
        lines = [
            "",
            f"AIoT platform running at {url}",
            f"MQTT broker: {stack.broker_url()}   database: {settings.DATABASES['default']['NAME']}",
            "Demo logins:",
            *[f"  {role:<17} {user} / {password}" for user, password, role in DEMO_USERS],
            "Press Ctrl-C to stop.",
            "",
        ]

        def announce() -> None:  # only once the web port listens: the URL printed works
            self.stdout.write("\n".join(lines))
            self.stdout.flush()

        try:
            stack.serve_forever(on_listening=announce)
        finally:
            stack.stop_all()
            self.stdout.write("stopped.")
