from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from web.demo import DemoRefused, load_demo


class Command(BaseCommand):
    help = "Load the demo: asset types, 2 sites, 3 edge nodes, 30 assets, one user per role (idempotent)."

    def handle(self, *args, **opts) -> None:
        try:
            summary = load_demo()
        except DemoRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"demo: {summary.sites} sites, {summary.nodes} edge nodes, {summary.assets} assets")
