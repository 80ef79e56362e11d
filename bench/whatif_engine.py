"""Benchmark of the pure what-if engine (no Celery): 50 assets x 1,000 replications x 1 year.

--assets 500 is a site of ten groups of 50 assets of one type, each group with its own 5 spares
(pools per asset type) and 3 crews. Merging includes the recommendation check (the engine
simulating the recommended ages and run to failure on 100 replications).

The fleet is calibrated from real run-to-failure lives (NASA C-MAPSS FD001): each asset is a
unit observed part-way through its life. One flight cycle is taken as 40 operating hours, so
that lives (median ~8,000 h) look like industrial rotating equipment; --hours-per-cycle 10
gives a stress case with about six maintenance jobs per asset-year.
Figures: seconds on one process, seconds with two processes each running half of the
replications (multiprocessing), the speed-up, and whether both give the identical result.
Also one-process seconds for each maintenance policy. Last line: one JSON object.

    .venv/bin/python bench/whatif_engine.py [--assets 50] [--replications 1000]
                                            [--hours-per-cycle 40]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twins.sim import (  # the repo root must be on the path first
    AssetInit,
    Policy,
    RulEstimate,
    Scenario,
    chunk_bounds,
    merge,
    run_chunk,
)

CMAPSS = ROOT / "datasets" / "cmapss" / "train_FD001.txt.gz"
# A site grows by groups of 50 assets of one type, each with its own 5 spares and 3 crews:
# the 50-asset headline is one group; a site of 500 is ten.
ASSETS_PER_TYPE = 50
CREWS_PER_TYPE = 3


def cmapss_fleet(count: int, hours_per_cycle: float = 40.0) -> list[AssetInit]:
    """Assets seen part-way through real C-MAPSS lives; the twin's RUL is the true remainder."""
    table = np.loadtxt(CMAPSS, usecols=(0, 1))
    units = np.unique(table[:, 0]).astype(int)
    assets = []
    for index in range(count):
        unit = units[index % units.size]
        life = table[table[:, 0] == unit, 1].max() * hours_per_cycle
        seen = life * (0.2 + 0.6 * ((index * 7) % 10) / 10.0)
        remaining = life - seen
        assets.append(
            AssetInit(
                asset_id=f"engine-{index:02d}",
                name=f"FD001 unit {unit}",
                health=round(1.0 - seen / life, 4),
                rul=RulEstimate(
                    median=remaining, low=0.7 * remaining, high=1.45 * remaining
                ),
                nominal_temp_c=60.0 + 5 * (index % 5),
                bearing_share=0.3 + 0.1 * (index % 5),
                repair_hours=8.0 + 4 * (index % 3),
                pm_hours=4.0,
                asset_type=f"type-{index // ASSETS_PER_TYPE}",
            )
        )
    return assets


def headline_scenario(
    assets: int, replications: int, hours_per_cycle: float = 40.0
) -> Scenario:
    return Scenario(
        assets=cmapss_fleet(assets, hours_per_cycle),
        name="bench: more load, two shifts, RUL-based",
        policy=Policy("rul_based", lead_time_hours=300.0),
        load_factor=1.1,
        ambient_delta_c=5.0,
        hours_per_day=16.0,
        days_per_week=6,
        crew_size=CREWS_PER_TYPE * max(1, -(-assets // ASSETS_PER_TYPE)),
        spare_stock=5,  # per asset type
        spare_lead_time_days=10.0,
        horizon_days=365,
        replications=replications,
        seed=2026,
    )


def _chunk(args: tuple[Scenario, int, int]) -> dict:
    scenario, start, stop = args
    return run_chunk(scenario, start, stop)


def timed_one_process(scenario: Scenario) -> tuple[float, dict]:
    began = time.perf_counter()
    result = merge([run_chunk(scenario, 0, scenario.replications)])
    return time.perf_counter() - began, result


def timed_processes(scenario: Scenario, processes: int) -> tuple[float, dict]:
    context = multiprocessing.get_context(
        "fork" if sys.platform == "linux" else "spawn"
    )
    began = time.perf_counter()
    with context.Pool(processes) as pool:
        bounds = chunk_bounds(scenario.replications, processes)
        chunks = pool.map(_chunk, [(scenario, a, b) for a, b in bounds])
    result = merge(chunks)
    return time.perf_counter() - began, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=50)
    parser.add_argument("--replications", type=int, default=1000)
    parser.add_argument("--hours-per-cycle", type=float, default=40.0)
    parser.add_argument("--no-policies", action="store_true", help="skip the one-process run per policy")
    args = parser.parse_args()
    scenario = headline_scenario(args.assets, args.replications, args.hours_per_cycle)
    asset_years = args.assets * args.replications * scenario.horizon_days / 365.0

    by_policy = {}
    policies = [
        Policy("run_to_failure"),
        Policy("time_based", interval_hours=4000.0),
        Policy("condition_based", health_threshold=0.15),
        Policy("rul_based", lead_time_hours=300.0),
    ]
    for policy in [] if args.no_policies else policies:
        seconds, _ = timed_one_process(replace(scenario, policy=policy))
        by_policy[policy.name] = round(seconds, 3)
        print(f"{policy.name:>16}: {seconds:6.2f} s on one process")

    checked = replace(scenario, replications=min(scenario.replications, 100))
    chunk = run_chunk(checked, 0, checked.replications)
    began = time.perf_counter()
    merge([chunk])  # the merge alone, with its recommendation check (100 replications)
    merge_s = time.perf_counter() - began
    one_s, one = timed_one_process(scenario)
    two_s, two = timed_processes(scenario, 2)
    identical = json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
    fleet = one["fleet"]
    jobs = (fleet["expected_failures"] + fleet["expected_preventive"]) / args.assets
    print(f"scenario: {scenario.name}; {jobs:.1f} maintenance jobs per asset-year")
    print(
        f"fleet: {fleet['expected_failures']} failures, {fleet['expected_preventive']} "
        f"preventive jobs, availability {fleet['availability']['mean']:.4f}, "
        f"total cost {fleet['total_cost']['mean']:,.0f} (p90 {fleet['total_cost']['p90']:,.0f})"
    )
    print(
        f"1 process : {one_s:6.2f} s ({1e6 * one_s / asset_years:.0f} us per asset-year)"
    )
    print(f"merge with its recommendation check (of 100 replications): {merge_s:.2f} s")
    print(
        f"2 processes: {two_s:6.2f} s (x{one_s / two_s:.2f}); identical results: {identical}"
    )
    print(
        json.dumps(
            {
                "assets": args.assets,
                "replications": args.replications,
                "seconds_1_process": round(one_s, 3),
                "seconds_2_processes": round(two_s, 3),
                "seconds_merge_with_check": round(merge_s, 3),
                "scale": round(one_s / two_s, 3),
                "identical": identical,
                "us_per_asset_year": round(1e6 * one_s / asset_years, 1),
                "jobs_per_asset_year": round(jobs, 2),
                "hours_per_cycle": args.hours_per_cycle,
                "seconds_1_process_by_policy": by_policy,
            }
        )
    )


if __name__ == "__main__":
    main()
