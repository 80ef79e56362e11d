"""What a planner reads: scenario comparisons and a flat CSV export of a result."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twins.sim.results import ScenarioResult

Getter = Callable[[dict[str, Any]], Any]

# (key, label, getter) for the fleet and for each asset; getters read a merged result.
FLEET_METRICS: list[tuple[str, str, Getter]] = [
    ("expected_failures", "Expected failures", lambda f: f["expected_failures"]),
    (
        "expected_preventive",
        "Expected preventive jobs",
        lambda f: f["expected_preventive"],
    ),
    (
        "failure_probability",
        "P(any failure in horizon)",
        lambda f: f["any_failure_probability"][-1],
    ),
    (
        "downtime_hours",
        "Downtime (production h, mean)",
        lambda f: f["downtime_hours"]["mean"],
    ),
    (
        "wait_hours",
        "Waiting for crews and parts (calendar h, mean)",
        lambda f: f["wait_hours"]["mean"],
    ),
    ("availability", "Availability (mean)", lambda f: f["availability"]["mean"]),
    (
        "maintenance_cost",
        "Maintenance cost (mean)",
        lambda f: f["maintenance_cost"]["mean"],
    ),
    ("downtime_cost", "Downtime cost (mean)", lambda f: f["downtime_cost"]["mean"]),
    ("total_cost", "Total cost (mean)", lambda f: f["total_cost"]["mean"]),
    ("total_cost_p90", "Total cost (p90)", lambda f: f["total_cost"]["p90"]),
    ("crew_utilisation", "Crew utilisation", lambda f: f["crew_utilisation"]),
]
ASSET_METRICS: list[tuple[str, str, Getter]] = [
    ("rul_p50_days", "RUL median (days)", lambda a: a["rul_days"]["p50"]),
    ("ttf_p50_days", "First failure median (days)", lambda a: a["ttf_days"]["p50"]),
    (
        "failure_probability",
        "P(failure in horizon)",
        lambda a: a["failure_probability_horizon"],
    ),
    ("expected_failures", "Expected failures", lambda a: a["expected_failures"]),
    (
        "downtime_hours",
        "Downtime (production h, mean)",
        lambda a: a["downtime_hours"]["mean"],
    ),
    ("availability", "Availability (mean)", lambda a: a["availability"]["mean"]),
    ("total_cost", "Total cost (mean)", lambda a: a["total_cost"]["mean"]),
    (
        "recommended_day",
        "Recommended replacement (day)",
        lambda a: a["recommendation"]["day"],
    ),
]


def _delta(before: Any, after: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "baseline": before,
        "scenario": after,
        "delta": None,
        "delta_pct": None,
    }
    if isinstance(before, (int, float)) and isinstance(after, (int, float)):
        out["delta"] = round(after - before, 6)
        if before:
            out["delta_pct"] = round(100.0 * (after - before) / abs(before), 2)
    return out


def compare(
    baseline: ScenarioResult, others: Sequence[ScenarioResult]
) -> dict[str, Any]:
    """Side-by-side deltas of each scenario against the baseline (fleet and per asset).

    A value is None where it is not reached within the horizon; its delta is then None too.
    """
    base_assets = {a["asset_id"]: a for a in baseline["assets"]}
    scenarios = []
    for other in others:
        fleet = {
            key: _delta(get(baseline["fleet"]), get(other["fleet"]))
            for key, _label, get in FLEET_METRICS
        }
        assets = []
        for asset in other["assets"]:
            before = base_assets.get(asset["asset_id"])
            if before is None:
                continue  # not in the baseline: nothing to compare against
            row: dict[str, Any] = {"asset_id": asset["asset_id"], "name": asset["name"]}
            for key, _label, get in ASSET_METRICS:
                row[key] = _delta(get(before), get(asset))
            assets.append(row)
        scenarios.append(
            {
                "name": other["name"],
                "policy": other["policy"],
                "fleet": fleet,
                "assets": assets,
            }
        )
    return {
        "baseline": baseline["name"],
        "labels": {key: label for key, label, _get in FLEET_METRICS + ASSET_METRICS},
        "scenarios": scenarios,
    }


CSV_HEADER = [
    "scenario",
    "policy",
    "asset_id",
    "name",
    "rul_p10_days",
    "rul_p50_days",
    "rul_p90_days",
    "rul_p50_operating_hours",
    "ttf_p10_days",
    "ttf_p50_days",
    "ttf_p90_days",
    "failure_probability_horizon",
    "expected_failures",
    "expected_preventive",
    "downtime_hours_mean",
    "downtime_hours_p10",
    "downtime_hours_p90",
    "wait_hours_mean",
    "availability_mean",
    "maintenance_cost_mean",
    "maintenance_cost_p10",
    "maintenance_cost_p90",
    "downtime_cost_mean",
    "downtime_cost_p10",
    "downtime_cost_p90",
    "total_cost_mean",
    "total_cost_p10",
    "total_cost_p90",
    "recommended_action",
    "recommended_day",
    "recommended_operating_hours",
    "recommended_interval_operating_hours",
    "recommended_cost_per_operating_hour_simulated",
    "run_to_failure_cost_per_operating_hour_simulated",
    "recommended_saving_pct_simulated",
]


def _blank(value: Any) -> Any:
    return "" if value is None else value


def to_csv_rows(result: ScenarioResult) -> list[list[Any]]:
    """Header plus one row per asset and a final FLEET row; feed to csv.writer."""
    rows: list[list[Any]] = [list(CSV_HEADER)]
    for a in result["assets"]:
        rec = a["recommendation"]
        rows.append(
            [
                _blank(v)
                for v in [
                    result["name"],
                    result["policy"],
                    a["asset_id"],
                    a["name"],
                    a["rul_days"]["p10"],
                    a["rul_days"]["p50"],
                    a["rul_days"]["p90"],
                    a["rul_operating_hours"]["p50"],
                    a["ttf_days"]["p10"],
                    a["ttf_days"]["p50"],
                    a["ttf_days"]["p90"],
                    a["failure_probability_horizon"],
                    a["expected_failures"],
                    a["expected_preventive"],
                    a["downtime_hours"]["mean"],
                    a["downtime_hours"]["p10"],
                    a["downtime_hours"]["p90"],
                    a["wait_hours"]["mean"],
                    a["availability"]["mean"],
                    a["maintenance_cost"]["mean"],
                    a["maintenance_cost"]["p10"],
                    a["maintenance_cost"]["p90"],
                    a["downtime_cost"]["mean"],
                    a["downtime_cost"]["p10"],
                    a["downtime_cost"]["p90"],
                    a["total_cost"]["mean"],
                    a["total_cost"]["p10"],
                    a["total_cost"]["p90"],
                    rec["action"],
                    rec["day"],
                    rec["operating_hours"],
                    rec.get("interval_hours"),
                    (rec.get("simulated") or {}).get("cost_per_hour"),
                    (rec.get("simulated") or {}).get("run_to_failure_cost_per_hour"),
                    (rec.get("simulated") or {}).get("saving_pct"),
                ]
            ]
        )
    f = result["fleet"]
    fleet_row: dict[str, Any] = {
        "scenario": result["name"],
        "policy": result["policy"],
        "asset_id": "FLEET",
        "name": "all assets",
        "failure_probability_horizon": f["any_failure_probability"][-1],
        "expected_failures": f["expected_failures"],
        "expected_preventive": f["expected_preventive"],
        "wait_hours_mean": f["wait_hours"]["mean"],
        "availability_mean": f["availability"]["mean"],
    }
    for metric in ("downtime_hours", "maintenance_cost", "downtime_cost", "total_cost"):
        for stat in ("mean", "p10", "p90"):
            fleet_row[f"{metric}_{stat}"] = f[metric][stat]
    rows.append([_blank(fleet_row.get(column)) for column in CSV_HEADER])
    return rows
