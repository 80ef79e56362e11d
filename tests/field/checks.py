"""What the platform stored for a test asset, and its comparison with what the device held."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from datetime import datetime

from ingest import timeseries
from ingest.models import DeadLetter, EdgeEvent
from tests.field.conftest import Platform


def stored(platform: Platform, asset: str) -> dict[str, dict[datetime, float]]:
    """metric -> {time: value} as stored."""
    a = platform.assets[asset]
    return {key: dict(timeseries.fetch_rows(a.pk, m.pk)) for key, m in platform.metrics[asset].items()}


def ticks(rows: dict[str, dict[datetime, float]]) -> dict[datetime, int]:
    return {ts: int(v) for ts, v in rows["tick"].items()}


def tick_before(rows: dict[str, dict[datetime, float]], ts: datetime) -> int | None:
    """The device's tick when a value stored at ``ts`` was read (see ``mismatches``)."""
    at = sorted(ticks(rows).items())
    i = bisect.bisect_right([t for t, _ in at], ts) - 1
    return at[i][1] if i >= 0 else None


def mismatches(rows: dict[str, dict[datetime, float]], expected: dict[str, Callable[[int], float]],
               later: frozenset[str] = frozenset(), offsets: tuple[int, ...] = (0, 1)) -> list[str]:
    """Every stored value of every metric against expected[metric](k), k being the device's
    tick when it was read: the last tick stored at or before that time (the agent sends a value
    only when it changed, so an unchanged tick is not stored again). Metrics in ``later`` come
    from a request after the tick's in the same poll (another register table): the tick may have
    moved on between the two requests, so k + 1 is right for them too (``offsets``: the ticks
    accepted for them, relative to k)."""
    at = sorted(ticks(rows).items())
    times = [t for t, _ in at]
    out = []
    for metric, fn in expected.items():
        for ts, value in rows.get(metric, {}).items():
            i = bisect.bisect_right(times, ts) - 1
            if i < 0:
                out.append(f"{metric} at {ts}: {value!r} stored before any tick")
                continue
            k = at[i][1]
            wants = [fn(k + d) for d in offsets] if metric in later else [fn(k)]
            if value not in wants or type(value) is not float:
                out.append(f"{metric} at tick {k} ({ts}): stored {value!r}, the device held {wants[0]!r}")
    return out


def refused(platform: Platform) -> list[str]:
    """What the ingest refused from this gateway (reason and detail)."""
    return [f"{d.reason}: {d.detail}" for d in DeadLetter.objects.filter(node_key=platform.node_id)]


def device_events(platform: Platform, asset: str, state: str | None = None) -> list[EdgeEvent]:
    qs = EdgeEvent.objects.filter(asset=platform.assets[asset], kind="device_status").order_by("ts")
    return [e for e in qs if state is None or e.data.get("state") == state]
