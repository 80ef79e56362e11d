"""The demo fleet's past: readings between the last stored one (at most HISTORY_DAYS back) and
now, from the same simulated sources at the ages they had then, written straight into the
telemetry store when the embedded demo starts.

So the charts have a week behind them, the twins have the 30 minutes of history they need from
the first refresh, and a restarted demo has no hole where it was stopped. Resolution falls with
age: TIERS below (the live fleet then sends a reading per second). Demo only: a real site's past
comes from its gateways' buffers, never from a simulator.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import Max

from edge_node.agent.sources import make_source
from edge_node.fleet_runner import PlannedAsset, asset_spec, fleet_epoch, planned_assets
from ingest import timeseries
from ingest.models import LatestValue
from twins.models import Asset, Metric

log = logging.getLogger(__name__)

HISTORY_DAYS = 7.0
# (span back from now in seconds, seconds between readings): the finest tier that covers a time wins.
TIERS = ((2 * 3600.0, 20.0), (24 * 3600.0, 300.0), (HISTORY_DAYS * 86400.0, 900.0))
WRITE_CHUNK = 20_000


def sample_times(since: float, now: float) -> list[float]:
    """Reading times in (since, now), oldest first, each tier's band at its own spacing."""
    bands, inner = [], 0.0
    for span, step in TIERS:  # finest (newest) first
        bands.append((now - span, now - inner, step))
        inner = span
    times: list[float] = []
    for low, high, step in reversed(bands):
        t = (max(low, since) // step + 1) * step
        while t < high:
            times.append(t)
            t += step
    return times


def asset_history(asset: PlannedAsset, since: float, now: float, elapsed_s: float) -> list[tuple[float, dict[str, float]]]:
    """(time, values) of one simulated asset between ``since`` and ``now``, from its source at
    the ages it had then (the spec's age is its age at ``now``)."""
    spec = asset_spec(asset, elapsed_s, now)
    source = make_source(spec.asset_type, spec.asset_id, seed=spec.seed, params=spec.params, fail_at=spec.fail_at,
                         age_s=spec.age_s, renew_s=spec.renew_s)
    out = []
    for t in sample_times(since, now):
        sim_t = t - now
        if source.life_at(sim_t) is not None and source.age_s + sim_t < 0:
            continue  # before the component was installed
        out.append((t, source.step(sim_t)[0].values))
    return out


def backfill(now: float | None = None, days: float = HISTORY_DAYS) -> int:
    """Write the missing history of every simulated asset; returns the number of readings."""
    now = time.time() if now is None else now
    started = time.perf_counter()
    planned = {a.key: a for assets in planned_assets().values() for a in assets}
    if not planned:
        return 0
    elapsed = now - fleet_epoch(now)
    ids = dict(Asset.objects.filter(key__in=list(planned)).values_list("key", "id"))
    metric_ids: dict[tuple[str, str], int] = {
        (type_key, key): mid for mid, key, type_key in Metric.objects.filter(asset_type__key__in={a.type_key for a in planned.values()}).values_list("id", "key", "asset_type__key")
    }
    last = dict(LatestValue.objects.filter(asset_id__in=list(ids.values())).values("asset_id").annotate(ts=Max("ts")).values_list("asset_id", "ts"))
    written = 0
    for key, asset in sorted(planned.items()):
        asset_id = ids[key]
        since = max(now - days * 86400.0, last[asset_id].timestamp() if asset_id in last else 0.0)
        rows: list[timeseries.Row] = []
        latest: dict[tuple[int, int], tuple[datetime, float]] = {}
        for t, values in asset_history(asset, since, now, elapsed):
            ts = datetime.fromtimestamp(t, UTC)
            for name, value in values.items():
                mid = metric_ids.get((asset.type_key, name))
                if mid is not None:
                    rows.append((ts, asset_id, mid, float(value)))
                    latest[(asset_id, mid)] = (ts, float(value))
        if not rows:
            continue
        with transaction.atomic():
            for i in range(0, len(rows), WRITE_CHUNK):
                timeseries.write_rows(rows[i : i + WRITE_CHUNK])
            timeseries.upsert_latest(latest)
            Asset.objects.filter(id=asset_id).update(last_seen=rows[-1][0])
        written += len(rows)
    log.info("simulated fleet: %d readings of history written in %.1f s", written, time.perf_counter() - started)
    return written
