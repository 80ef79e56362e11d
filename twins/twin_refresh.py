"""Refresh the digital twins from the telemetry store, batched: per asset type one telemetry
query, one ``assess_many`` call; then bulk upserts of TwinState, bulk inserts of throttled
TwinSnapshots, and "twin.update" live messages after commit.

Runs in a Celery task (production: celery beat) or the embedded stack's refresh thread, never
in the ingest worker.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from django.db import connection, transaction

from ingest import timeseries
from twins import twin_const as tc
from twins import twin_window
from twins.models import Asset, Metric, TwinSnapshot, TwinState
from twins.rul_registry import ServingModel, active_models
from twins.twin_live import TwinUpdate, send_twin_updates, twin_figures

log = logging.getLogger(__name__)

STATE_FIELDS = [
    "computed_at", "model_version", "health", "rul_median", "rul_low", "rul_high", "rul_unit",
    "rul_days_median", "rul_days_low", "rul_days_high", "degradation_rate", "latest", "details",
]


TWIN_REFRESH_LOCK_CLASS = 0x5457  # "TW": the advisory lock class of per-type refreshes


@dataclass
class RefreshResult:
    refreshed: int = 0
    without_data: int = 0
    failed: int = 0
    snapshots: int = 0
    sent: int = 0
    seconds: float = 0.0
    by_type: dict[str, int] = field(default_factory=dict)
    incremental: int = 0  # asset types read from their kept window plus the new rows (twin_window)
    skipped_types: list[str] = field(default_factory=list)  # being refreshed by another worker


def calendar_days(operating_hours: float | None, hours_per_day: float) -> float | None:
    """Calendar days an asset running ``hours_per_day`` takes to use up ``operating_hours``;
    None when it does not run at all (the RUL is then not consumed)."""
    if operating_hours is None or hours_per_day <= 0:
        return None
    return operating_hours / min(hours_per_day, 24.0)


def degradation_rate(health: float, median_rows: float, cap_rows: float, hours_per_row: float) -> float | None:
    """Health lost per operating hour at the pace of the estimate: health reaches 0 when the RUL
    runs out (health / RUL). None while the RUL sits at the model's cap (no wear visible: no
    pace to tell) and at the end of life.

    Not a slope fitted through recent estimates: over the minutes of history a refresh reads, a
    life of thousands of hours changes health by less than the estimate's noise, so such a
    slope is noise (and can come out negative)."""
    if median_rows >= cap_rows * tc.AT_CAP_SHARE or median_rows <= 0:
        return None
    return health / (median_rows * hours_per_row)


def history_matrix(values: np.ndarray) -> np.ndarray | None:
    """[rows, S] with gaps filled by the previous value of the metric (then the next); None when
    a metric has no value at all in the window (the model cannot be fed)."""
    missing = np.isnan(values)
    if not missing.any():
        return values
    if missing.all(axis=0).any():
        return None
    rows = np.arange(len(values))[:, None]
    last_seen = np.maximum.accumulate(np.where(missing, 0, rows), axis=0)
    filled = np.take_along_axis(values, last_seen, axis=0)
    first_valid = np.argmax(~missing, axis=0)
    leading = rows < first_valid[None, :]
    return np.where(leading, values[first_valid, np.arange(values.shape[1])][None, :], filled)


def _type_histories(
    model: ServingModel, asset_ids: list[int], metric_ids_by_key: dict[str, int], now: datetime, time_scale: float,
) -> tuple[list[int], list[np.ndarray], bool]:
    predictor, serving = model.predictor, model.serving
    metric_ids = [metric_ids_by_key[serving.signal_metrics[s]] for s in predictor.signals]
    rows = predictor.window
    if serving.row_seconds:
        # Complete buckets only: the one in progress averages a few seconds, where every
        # training row averages a whole interval.
        step = float(serving.row_seconds) / time_scale  # wall-clock seconds of one row
        end_bucket = timeseries.bucket_floor(now.timestamp(), step)  # the stores' bucket origin
        series = timeseries.recent_rows_many(
            asset_ids, metric_ids, datetime.fromtimestamp(end_bucket - rows * step, UTC), datetime.fromtimestamp(end_bucket, UTC),
            bucket=timedelta(seconds=step),
        )
        incremental = False
    else:
        series, incremental = twin_window.recent_rows(
            model.asset_type_key, model.version, asset_ids, metric_ids,
            now - timedelta(seconds=tc.CYCLE_LOOKBACK_S), now + timedelta(microseconds=1), rows,
        )
    ids, histories = [], []
    for asset_id in asset_ids:
        if asset_id not in series:
            continue
        block = history_matrix(series[asset_id][1])
        if block is not None:
            ids.append(asset_id)
            histories.append(block)
    return ids, histories, incremental


def refresh_twins(
    asset_ids: list[int] | None = None, now: datetime | None = None, broadcast: bool = True, time_scale: float = 1.0,
) -> RefreshResult:
    """Recompute the twins of every asset (or ``asset_ids``) whose type has an active RUL model.

    ``time_scale``: operating seconds per wall-clock second of the telemetry timestamps: 1 for
    real assets; the embedded demo's simulated fleet with ``--speedup S`` runs S times faster.
    """
    if time_scale <= 0:
        raise ValueError("time_scale must be > 0")
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    result = RefreshResult()
    models = active_models()
    if not models:
        return result
    assets_qs = Asset.objects.filter(asset_type__key__in=list(models))
    if asset_ids is not None:
        assets_qs = assets_qs.filter(id__in=list(asset_ids))
    assets = {a[0]: a for a in assets_qs.values_list("id", "site_id", "hours_per_day", "asset_type__key")}
    if not assets:
        return result
    metric_ids: dict[str, dict[str, int]] = defaultdict(dict)
    for metric_id, key, type_key in Metric.objects.filter(asset_type__key__in=list(models)).values_list("id", "key", "asset_type__key"):
        metric_ids[type_key][key] = metric_id
    by_type: dict[str, list[int]] = defaultdict(list)
    for asset_id, _site, _hpd, type_key in assets.values():
        by_type[type_key].append(asset_id)

    held = lock_asset_types(sorted(by_type))
    result.skipped_types = sorted(set(by_type) - set(held))
    try:
        return _refresh_types({t: ids for t, ids in by_type.items() if t in held}, models, assets, metric_ids, now, time_scale, broadcast, result, started)
    finally:
        unlock_asset_types(held)


def lock_asset_types(type_keys: list[str]) -> list[str]:
    """One refresh at a time per asset type across Celery workers and hosts: a session-level
    advisory lock per type, taken without waiting; a type another worker is refreshing is
    skipped (its twins are being refreshed right now). SQLite: one process, no lock."""
    if connection.vendor != "postgresql" or not type_keys:
        return list(type_keys)
    with connection.cursor() as cur:  # one query for every type
        cur.execute("SELECT key FROM unnest(%s::text[]) AS key WHERE pg_try_advisory_lock(%s, hashtext(key))", [type_keys, TWIN_REFRESH_LOCK_CLASS])
        return sorted(key for (key,) in cur.fetchall())


def unlock_asset_types(type_keys: list[str]) -> None:
    if connection.vendor != "postgresql" or not type_keys:
        return
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_unlock(%s, hashtext(key)) FROM unnest(%s::text[]) AS key", [TWIN_REFRESH_LOCK_CLASS, type_keys])


def _refresh_types(by_type, models, assets, metric_ids, now, time_scale, broadcast, result: RefreshResult, started: float) -> RefreshResult:
    states: list[TwinState] = []
    for type_key, ids in by_type.items():
        model = models[type_key]
        missing = [m for m in model.serving.signal_metrics.values() if m not in metric_ids[type_key]]
        if missing:
            log.error("RUL model %s needs metrics %s that asset type %s lacks", model.version, missing, type_key)
            continue
        ready, histories, incremental = _type_histories(model, ids, metric_ids[type_key], now, time_scale)
        result.incremental += incremental
        result.without_data += len(ids) - len(ready)
        if not ready:
            continue
        try:
            batch = model.predictor.predict_many(histories)
        except Exception:
            # One type's model failing (onnxruntime error, histories that do not fit it) must not stop the others.
            log.exception("RUL model %s could not assess %d %s twins", model.version, len(ready), type_key)
            result.failed += len(ready)
            continue
        hours_per_row, per_row, cap = model.serving.hours_per_row, model.serving.rul_per_row, model.predictor.cap
        details = model.details()
        if time_scale != 1.0:
            details["time_scale"] = time_scale
            details["assumptions"] = [*details["assumptions"], f"Simulated fleet at {time_scale:g}x real time: one wall-clock second stands for {time_scale:g} operating seconds."]
        for i, asset_id in enumerate(ready):
            hpd = float(assets[asset_id][2])
            # Rows of the model -> the serving unit (cycles, or operating hours), and -> hours.
            median, low, high, health = float(batch.median[i]), float(batch.low80[i]), float(batch.high80[i]), float(batch.health[i])
            states.append(TwinState(
                asset_id=asset_id, computed_at=now, model_version=model.version, health=health,
                rul_median=median * per_row, rul_low=low * per_row, rul_high=high * per_row, rul_unit=model.serving.rul_unit,
                rul_days_median=calendar_days(median * hours_per_row, hpd), rul_days_low=calendar_days(low * hours_per_row, hpd),
                rul_days_high=calendar_days(high * hours_per_row, hpd),
                degradation_rate=degradation_rate(health, median, cap, hours_per_row),
                details={**details, "rows_used": len(histories[i]), "hours_per_day": hpd, "rul_hours_median": median * hours_per_row},
            ))
        result.by_type[type_key] = len(ready)
    if not states:
        result.seconds = time.perf_counter() - started
        return result

    latest = timeseries.latest_values([s.asset_id for s in states])
    for s in states:
        s.latest = {k: {"value": v, "ts": ts.timestamp()} for k, (v, ts) in latest.get(s.asset_id, {}).items()}
    result.refreshed = len(states)
    result.snapshots, updates = _store(states, assets, now, tc.SNAPSHOT_MIN_INTERVAL_S / time_scale)
    if broadcast:
        transaction.on_commit(lambda: setattr(result, "sent", send_twin_updates(updates)))
    result.seconds = time.perf_counter() - started
    return result


@transaction.atomic
def _store(states: list[TwinState], assets: dict[int, tuple], now: datetime, slot: float) -> tuple[int, list[TwinUpdate]]:
    # The snapshot throttle: one per asset per SNAPSHOT_MIN_INTERVAL_S slot, decided from the
    # previous refresh time (one indexed read instead of an aggregate over the history table).
    previous = dict(TwinState.objects.filter(asset_id__in=[s.asset_id for s in states]).values_list("asset_id", "computed_at"))
    snapshots = [
        TwinSnapshot(asset_id=s.asset_id, computed_at=now, health=s.health, rul_median=s.rul_median, rul_low=s.rul_low, rul_high=s.rul_high)
        for s in states
        if s.asset_id not in previous or previous[s.asset_id].timestamp() // slot != now.timestamp() // slot
    ]
    _upsert_states(states)
    TwinSnapshot.objects.bulk_create(snapshots)
    updates: list[TwinUpdate] = [
        {"type": "twin.update", "asset": s.asset_id, "site": assets[s.asset_id][1], "twin": twin_figures(s)} for s in states
    ]
    return len(snapshots), updates


def _upsert_states(states: list[TwinState]) -> None:
    """What ``bulk_create(update_conflicts=True)`` does, as one executemany of a one-row
    INSERT ... ON CONFLICT, the values adapted per column kind: Django's per-value field calls
    took ~0.15 s of a 1,000-twin refresh, and on PostgreSQL psycopg's parsing of one
    14,000-placeholder statement another ~0.3 s."""
    ops, qn = connection.ops, connection.ops.quote_name
    fields = [TwinState._meta.get_field(name) for name in ["asset", *STATE_FIELDS]]
    columns = [qn(f.column) for f in fields]
    encoders = {f.name: f.encoder for f in fields if f.get_internal_type() == "JSONField"}
    rows = []
    for s in states:
        row = [s.asset_id, ops.adapt_datetimefield_value(s.computed_at)]
        for name in STATE_FIELDS[1:]:
            value = getattr(s, name)
            row.append(ops.adapt_json_value(value, encoders[name]) if name in encoders else value)
        rows.append(row)
    update = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    sql = (
        f"INSERT INTO {qn(TwinState._meta.db_table)} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({columns[0]}) DO UPDATE SET {update}"
    )
    if connection.vendor == "postgresql":
        # The same statement with server-side binding: psycopg's C dumpers and one prepared
        # statement pipelined, where Django's client-side cursor merges every value into the SQL
        # text in Python (66 ms instead of 130-330 ms for 1,000 states).
        import psycopg

        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cur:
            cur.executemany(sql, rows)
        return
    with connection.cursor() as cur:
        cur.executemany(sql, rows)
