"""Twins and scenarios for the scenario tests."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from tests.factories import make_asset, make_asset_type, make_site
from twins.models import Asset, Site, TwinState
from twins.scenarios.services import create_scenario


def make_twin(asset: Asset, *, health: float = 0.6, rate: float | None = 0.0002, median: float | None = 2000.0,
              low: float | None = 1400.0, high: float | None = 2900.0, unit: str = "hours", **extra: Any) -> TwinState:
    return TwinState.objects.create(
        asset=asset, computed_at=timezone.now(), model_version=extra.pop("model_version", ""), health=health,
        rul_median=median, rul_low=low, rul_high=high, rul_unit=unit, degradation_rate=rate, **extra,
    )


def make_site_with_twins(n: int = 3, members=(), name: str | None = None) -> tuple[Site, list[Asset]]:
    site = make_site(name=name, members=members)
    asset_type = make_asset_type()
    assets = [make_asset(site, asset_type, None, name=f"Pump {i + 1} of {site.name}") for i in range(n)]
    for i, asset in enumerate(assets):
        make_twin(asset, median=1500.0 + 500 * i, low=(1500.0 + 500 * i) * 0.7, high=(1500.0 + 500 * i) * 1.4)
    return site, assets


PARAMS = {
    "load_factor": 1.2, "speed_factor": 1.0, "hours_per_day": None, "days_per_week": 7, "ambient_delta_c": 5.0,
    "policy": {"name": "condition_based", "health_threshold": 0.2},
    "crew_size": 2, "spare_stock": 2, "spare_lead_time_days": 14.0, "horizon_days": 365, "replications": 200, "seed": 7,
    "pm_cost": 1000.0, "cm_cost": 5000.0, "downtime_cost_per_hour": 500.0,
}


def make_scenario(site: Site, assets: list[Asset], user=None, **changes: Any):
    params = {**PARAMS, **changes}
    return create_scenario(user, name=params.pop("name", "More load, condition-based"), site=site, assets=assets, params=params,
                           compare_baseline=params.pop("compare_baseline", True))
