"""python manage.py status: which platform processes are up (from their heartbeats), and since when;
readiness of the database, Redis and the broker. Exit code 1 when a process is down or a check fails."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand
from django.utils import timezone

from web.health import readiness
from web.heartbeats import heartbeat_rows


class Command(BaseCommand):
    help = "Show the platform's processes (heartbeats) and dependencies; exit 1 if any is down."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **opts) -> None:
        ready, checks = readiness()
        rows = heartbeat_rows(timezone.now())
        if opts["json"]:
            self.stdout.write(json.dumps({"ready": ready, "checks": checks, "processes": [
                {"kind": r.kind, "name": r.name, "host": r.host, "pid": r.pid, "up": r.alive, "since": r.started_at.isoformat(), "age_s": round(r.age_s, 1)}
                for r in rows]}))
        else:
            for name, outcome in checks.items():
                self.stdout.write(f"{name:<12} {outcome}")
            self.stdout.write("")
            self.stdout.write(f"{'process':<18} {'name':<28} {'host':<20} {'state':<5} {'since':<20} last beat")
            for r in rows:
                self.stdout.write(f"{r.kind:<18} {r.name:<28} {r.host:<20} {'up' if r.alive else 'DOWN':<5} {r.started_at:%Y-%m-%d %H:%M:%S}  {r.age_s:.0f} s ago")
            if not rows:
                self.stdout.write("(no process has reported a heartbeat)")
        if not ready or any(not r.alive for r in rows):
            raise SystemExit(1)
