"""The "twin.update" live message: one definition for the refresh (sender), the live socket
consumer and the pages (receivers). Sent to asset.<id> and, batched per site, to site.<id>."""

from __future__ import annotations

import logging
from typing import Any, Literal, TypedDict

from channels.layers import get_channel_layer

from ingest.group_sender import send_to_groups
from ingest.live import asset_group, site_group

log = logging.getLogger(__name__)


class TwinFigures(TypedDict):
    computed_at: float
    model_version: str
    health: float
    rul_median: float | None
    rul_low: float | None
    rul_high: float | None
    rul_unit: str
    rul_days_median: float | None
    rul_days_low: float | None
    rul_days_high: float | None
    degradation_rate: float | None  # health lost per operating hour (health / RUL); None at the cap
    rul_cap: float | None  # the model's cap, in rul_unit: a median there means "at least this"
    rows_used: int | None  # rows of history behind the estimate
    window: int | None  # rows the model's features span (fewer = an early, less certain estimate)


class TwinUpdate(TypedDict):
    type: Literal["twin.update"]
    asset: int
    site: int
    twin: TwinFigures


def twin_figures(state: Any) -> TwinFigures:
    """The figures of a TwinState (or any object with its fields) as plain JSON."""
    return {
        "computed_at": state.computed_at.timestamp(), "model_version": state.model_version, "health": state.health,
        "rul_median": state.rul_median, "rul_low": state.rul_low, "rul_high": state.rul_high, "rul_unit": state.rul_unit,
        "rul_days_median": state.rul_days_median, "rul_days_low": state.rul_days_low, "rul_days_high": state.rul_days_high,
        "degradation_rate": state.degradation_rate, "rul_cap": (state.details or {}).get("cap_rul"),
        "rows_used": (state.details or {}).get("rows_used"), "window": (state.details or {}).get("window"),
    }


def send_twin_updates(updates: list[TwinUpdate]) -> int:
    """Group-send the updates (call after commit); return how many went out. A channel-layer
    outage is logged, never raised: the twins are stored already."""
    layer = get_channel_layer()
    if layer is None or not updates:
        return 0
    messages: list[tuple[str, dict]] = []
    by_site: dict[int, list[TwinUpdate]] = {}
    for update in updates:
        messages.append((asset_group(update["asset"]), update))
        by_site.setdefault(update["site"], []).append(update)
    for site_id, items in by_site.items():
        # One group message per site: the consumer unpacks "site.updates" into its queue.
        messages.append((site_group(site_id), {"type": "site.updates", "site": site_id, "updates": items}))
    try:
        send_to_groups(messages)
    except Exception:
        log.exception("twin updates of %d assets not sent", len(updates))
        return 0
    return len(updates)
