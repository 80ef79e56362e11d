"""Twin refresh against the database: 1,000 twins refreshed by ``twins.twin_refresh.refresh_twins``
(one bulk telemetry query per asset type, one ``assess_many``, bulk upserts, live messages on the
in-memory channel layer), against a baseline measured in the same run: the same refresh done
one asset at a time (what a per-asset task would cost), extrapolated from a sample.

Run from the repo root: ``.venv/bin/python bench/twin_refresh.py [--assets 1000] [--trees 100]``.
It builds a throw-away test database (SQLite by default; DATABASE_URL=postgres://... for
PostgreSQL/TimescaleDB), trains a turbofan model on FD001, writes the last 38 cycles of a
C-MAPSS engine for every asset (one reading per cycle, 15 metrics). Last line: one JSON object.

Two batched figures: ``refresh_batched_ms`` is a cold refresh (the kept windows of
``twins.twin_window`` cleared first: every reading read from the database, as on a first run);
``refresh_steady_ms`` is the periodic refresh in steady state, with one new cycle written for
every asset before each timed refresh (on SQLite it reads only those new rows; on PostgreSQL,
which has no insertion order, it reads everything again: ``steady_read`` says which).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
FD001 = REPO_ROOT / "datasets" / "cmapss" / "train_FD001.txt.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--assets", type=int, default=1000)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-sample", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one batched refresh")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="bench-twins-")
    os.environ.setdefault("AIOT_VAR_DIR", tmp)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        run(args, Path(tmp))
    finally:
        connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)


def run(args, tmp: Path) -> None:
    from django.db import transaction

    from edge_node.agent.sources.cmapss import SENSOR_COLUMNS, engines_of
    from ingest import timeseries
    from twins import twin_window
    from twins.models import Asset, Site
    from twins.rul import load_cmapss
    from twins.rul_registry import cmapss_serving, store_trained
    from twins.rul_training import fit_cmapss
    from twins.twin_refresh import refresh_twins
    from web.demo import sync_asset_types

    started = time.perf_counter()
    trained = fit_cmapss(load_cmapss(FD001), n_estimators=args.trees)
    model = store_trained(trained, "turbofan", cmapss_serving(), trained_on="FD001 (bench)")
    print(f"model {model.version}: {args.trees} trees, trained in {time.perf_counter() - started:.1f} s, held-out {json.dumps(model.metrics)}")

    types = sync_asset_types()
    site = Site.objects.create(key="bench", name="Bench")
    assets = Asset.objects.bulk_create(
        [Asset(key=f"engine-{i}", name=f"Engine {i}", site=site, asset_type=types["turbofan"]) for i in range(args.assets)]
    )
    metrics = {m.key: m.id for m in types["turbofan"].metrics.all()}
    engines = engines_of(FD001)
    rows_per_asset = 38  # window 30 + (5 - 1) rate points x stride 2
    t0 = time.time() - 3600
    rows, cuts = [], []
    for i, asset in enumerate(assets):
        engine = engines[1 + i % len(engines)]
        cut = min(len(engine), 60 + (i * 7) % max(1, len(engine) - 60))
        cuts.append(cut)
        for j, row in enumerate(engine[cut - rows_per_asset : cut]):
            ts = datetime.fromtimestamp(t0 + j, UTC)
            rows.extend((ts, asset.id, metrics[name], float(row[col])) for name, col in SENSOR_COLUMNS.items())
            rows.append((ts, asset.id, metrics["cycle"], float(row[1])))
    with transaction.atomic():
        timeseries.write_rows(rows)
    print(f"{args.assets} assets, {len(rows)} telemetry rows ({timeseries.dialect()})")

    assert refresh_twins().refreshed == args.assets  # loads the model; not timed
    cold = []
    for _ in range(args.repeats):
        twin_window.clear()
        result = refresh_twins()
        cold.append(result.seconds)
        assert result.refreshed == args.assets and not result.incremental, result
    batched_s = statistics.median(cold)

    # Steady state: one new cycle for every asset before each timed refresh.
    steady, incremental = [], []
    for k in range(args.repeats):
        ts = datetime.fromtimestamp(t0 + rows_per_asset + k, UTC)
        new_rows = []
        for i, asset in enumerate(assets):
            engine = engines[1 + i % len(engines)]
            row = engine[(cuts[i] + k) % len(engine)]
            new_rows.extend((ts, asset.id, metrics[name], float(row[col])) for name, col in SENSOR_COLUMNS.items())
            new_rows.append((ts, asset.id, metrics["cycle"], float(row[1])))
        with transaction.atomic():
            timeseries.write_rows(new_rows)
        result = refresh_twins()
        steady.append(result.seconds)
        incremental.append(bool(result.incremental))
        assert result.refreshed == args.assets, result
    steady_s = statistics.median(steady)
    steady_read = "incremental" if all(incremental) else "full" if not any(incremental) else "mixed"
    if args.profile:
        import cProfile
        import pstats

        for label in ("cold", "steady state"):
            if label == "cold":
                twin_window.clear()
            print(f"--- profile of one {label} refresh")
            profiler = cProfile.Profile()
            profiler.runcall(refresh_twins)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)

    sample = [a.id for a in assets[: args.baseline_sample]]
    started = time.perf_counter()
    for asset_id in sample:
        twin_window.clear()  # a per-asset task reads its asset's readings each time
        refresh_twins(asset_ids=[asset_id])
    per_asset_s = (time.perf_counter() - started) / len(sample)
    baseline_s = per_asset_s * args.assets

    print(f"batched refresh of {args.assets} twins, cold (every reading read): {batched_s * 1000:.0f} ms (median of {args.repeats})")
    print(f"batched refresh, steady state (one new cycle per asset before each; {steady_read} read): {steady_s * 1000:.0f} ms (median of {args.repeats})")
    print(f"one asset at a time: {per_asset_s * 1000:.1f} ms per twin -> {baseline_s * 1000:.0f} ms for {args.assets} (from {len(sample)})")
    print(json.dumps({
        "assets": args.assets, "database": timeseries.dialect(), "trees": args.trees,
        "refresh_batched_ms": round(batched_s * 1000, 1), "refresh_per_asset_ms": round(per_asset_s * 1000, 2),
        "baseline_ms": round(baseline_s * 1000, 1), "speedup_vs_per_asset": round(baseline_s / batched_s, 1),
        "refresh_cold_runs_ms": [round(x * 1000, 1) for x in cold],
        "refresh_steady_ms": round(steady_s * 1000, 1), "refresh_steady_runs_ms": [round(x * 1000, 1) for x in steady],
        "steady_read": steady_read, "speedup_steady_vs_per_asset": round(baseline_s / steady_s, 1),
        "model_metrics": model.metrics,
    }))


if __name__ == "__main__":
    main()
