"""Small builders for what-if scenarios: a twin's asset and a planner's scenario."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from twins.sim import AssetInit, RulEstimate, Scenario


def twin_asset(asset_id: str = "pump-1", **overrides: Any) -> AssetInit:
    """An asset as its twin reports it: 60 % health, RUL 2,000 h (80 %: 1,400-2,900 h)."""
    values: dict[str, Any] = {
        "name": f"Asset {asset_id}",
        "health": 0.6,
        "rul": RulEstimate(median=2000.0, low=1400.0, high=2900.0),
        "repair_hours": 12.0,
        "pm_hours": 4.0,
    }
    values.update(overrides)
    return AssetInit(asset_id=asset_id, **values)


def fleet(count: int, **overrides: Any) -> list[AssetInit]:
    return [twin_asset(f"a{i:02d}", **overrides) for i in range(count)]


def scenario(assets: list[AssetInit] | None = None, **overrides: Any) -> Scenario:
    base = Scenario(
        assets=assets if assets is not None else [twin_asset()],
        name="baseline",
        replications=300,
        horizon_days=365,
        seed=11,
        spare_stock=None,
    )
    return replace(base, **overrides)
