"""``manage.py load_asset_types``: the asset types (and their metrics, units and valid ranges)
of the edge agent's source plugins -- induction motor, centrifugal pump, HVAC unit, turbofan.

Idempotent. A production site whose gateways run those plugins needs these types before its
assets can be added; other types are made in the Django admin."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from web.demo import sync_asset_types


class Command(BaseCommand):
    help = "Create or update the asset types and metrics of the edge agent's source plugins."

    def handle(self, *args, **opts) -> None:
        types = sync_asset_types()
        self.stdout.write(f"{len(types)} asset type(s): {', '.join(sorted(types))}")
