"""The demo fleet's plan: how old each simulated asset is, how long its life is, and the faults
the demo injects. Pure (no Django); ``fleet_runner`` and the history backfill use it.

Lives come from the simulator's catalogue (``asset_types.LIFE_HOURS``: thousands to tens of
thousands of operating hours). Ages are spread the way a real site's are: per asset type, in
key order, the assets cycle through life stages, so most are healthy or wearing slowly (RUL of
months), one in twelve is a few weeks from the end and one in twelve fails within the demo's
first day or two (it is then replaced after the type's repair time and starts a new life).
Everything is seeded by the asset key: the same site gets the same plan on every machine.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from edge_node.agent.asset_types import LIFE_HOURS, REPAIR_HOURS
from edge_node.agent.fleet import FaultSpec

HOUR = 3600.0
# Life stages in the order a type's assets (sorted by key) take them; per twelve assets: four
# young, three healthy, three wearing, one late, one at the very end.
STAGES = ("young", "wearing", "healthy", "young", "late", "wearing", "healthy", "young", "wearing", "end", "healthy", "young")
# Share of the life used (uniform within), or the remaining operating hours for the last two.
STAGE_AGE_FRACTION = {"young": (0.05, 0.30), "healthy": (0.30, 0.45), "wearing": (0.65, 0.85)}
STAGE_REMAINING_HOURS = {"late": (250.0, 700.0), "end": (12.0, 36.0)}

# Injected faults: the first FIRST_FAULT_S after the fleet starts, then one every FAULT_EVERY_S,
# each lasting FAULT_DURATION_S, on healthy assets in turn; kinds that a demo rule sees.
FIRST_FAULT_S = 120.0
FAULT_EVERY_S = 900.0
FAULT_DURATION_S = 240.0
FAULTS_PLANNED = 96  # one day of them
FAULT_KINDS = {
    "induction_motor": ("overheat",),
    "centrifugal_pump": ("cavitation", "bearing_overheat"),
    "hvac_unit": ("co2_sensor_spike", "compressor_trip", "fan_failure"),
}


@dataclass(frozen=True)
class AssetLife:
    life_s: float  # operating seconds from new to worn out, of the component in place
    age_s: float  # its operating age at the fleet's epoch (first start)
    renew_s: float  # replaced this long after it fails
    stage: str

    @property
    def remaining_h(self) -> float:
        return (self.life_s - self.age_s) / HOUR


def _rng(key: str, salt: int) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(key.encode()), salt])


def plan_lives(assets: list[tuple[str, str]]) -> dict[str, AssetLife]:
    """{asset key: its life} for (key, asset type) pairs; types without a life in the catalogue
    (the C-MAPSS replay) are left out."""
    by_type: dict[str, list[str]] = {}
    for key, type_key in assets:
        if type_key in LIFE_HOURS:
            by_type.setdefault(type_key, []).append(key)
    out = {}
    for type_key, keys in by_type.items():
        low, high = LIFE_HOURS[type_key]
        for i, key in enumerate(sorted(keys)):
            rng = _rng(key, 1)
            stage = STAGES[i % len(STAGES)]
            life_h = float(rng.uniform(low, high))
            if stage in STAGE_AGE_FRACTION:
                age_h = life_h * float(rng.uniform(*STAGE_AGE_FRACTION[stage]))
            else:
                age_h = life_h - float(rng.uniform(*STAGE_REMAINING_HOURS[stage]))
            out[key] = AssetLife(life_h * HOUR, age_h * HOUR, REPAIR_HOURS[type_key] * HOUR, stage)
    return out


def plan_faults(lives: dict[str, AssetLife], types: dict[str, str], planned: int = FAULTS_PLANNED) -> dict[str, list[FaultSpec]]:
    """{asset key: faults} for the demo: one every FAULT_EVERY_S, on young and healthy assets in
    a seeded order (worn assets alert on their own already)."""
    candidates = sorted(k for k, life in lives.items() if life.stage in ("young", "healthy") and types.get(k) in FAULT_KINDS)
    out: dict[str, list[FaultSpec]] = {}
    if not candidates:
        return out
    order = [candidates[j] for j in _rng("faults", 2).permutation(len(candidates))]
    for n in range(planned):
        key = order[n % len(order)]
        kinds = FAULT_KINDS[types[key]]
        kind = kinds[(n // len(order)) % len(kinds)]
        out.setdefault(key, []).append(FaultSpec(at=FIRST_FAULT_S + n * FAULT_EVERY_S, kind=kind, duration_s=FAULT_DURATION_S))
    return out
