"""Sensor source plugins: registry name -> class.

Plugin names are the asset type names of ``asset_types.ASSET_TYPES`` (plus aliases), so a
fleet can pick a source from an asset's type alone.
"""

from __future__ import annotations

from .base import Fault, Sample, Source, SourceError
from .cmapss import CmapssReplay
from .hvac import HvacUnit
from .motor import InductionMotor
from .pump import CentrifugalPump

SOURCES: dict[str, type[Source]] = {
    "induction_motor": InductionMotor,
    "centrifugal_pump": CentrifugalPump,
    "hvac_unit": HvacUnit,
    "turbofan": CmapssReplay,
    "cmapss_replay": CmapssReplay,
}


def source_class(plugin: str) -> type[Source]:
    try:
        return SOURCES[plugin]
    except KeyError:
        raise SourceError(f"unknown source plugin {plugin!r} (known: {', '.join(sorted(SOURCES))})") from None


def make_source(plugin: str, asset_id: str, seed: int = 0, params: dict | None = None,
                fail_at: float | None = None, age_s: float = 0.0, renew_s: float | None = None) -> Source:
    return source_class(plugin)(asset_id, seed=seed, params=params, fail_at=fail_at, age_s=age_s, renew_s=renew_s)


__all__ = ["SOURCES", "Fault", "Sample", "Source", "SourceError", "make_source", "source_class"]
