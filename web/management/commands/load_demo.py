from __future__ import annotations

from django.core.management.base import BaseCommand

from web.demo import load_demo


class Command(BaseCommand):
    help = "Load the demo: asset types, 2 sites, 3 edge nodes, 30 assets, one user per role (idempotent)."

    def handle(self, *args, **opts) -> None:
        summary = load_demo()
        self.stdout.write(f"demo: {summary.sites} sites, {summary.nodes} edge nodes, {summary.assets} assets")
