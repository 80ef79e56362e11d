"""What a run's page shows, shaped from the stored results: charts' data, the per-asset table
with recommended calendar dates, the comparison, the CSV rows. Plain functions of stored data."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from twins.scenarios import const
from twins.scenarios.models import ScenarioRun
from twins.scenarios.progress import snapshot, ws_path
from twins.sim import compare, to_csv_rows


def recommended_date(start: date, day: float | None) -> str | None:
    """Day 0 of the simulation is the run's calibration date; the engine recommends a day."""
    if day is None:
        return None
    return (start + timedelta(days=int(day))).isoformat()


def _fleet(result: dict[str, Any]) -> dict[str, Any]:
    f = result["fleet"]
    return {
        "any_failure_probability": f["any_failure_probability"],
        "expected_failed_assets": f["expected_failed_assets"],
        "expected_failures": f["expected_failures"],
        "expected_preventive": f["expected_preventive"],
        "downtime_hours": f["downtime_hours"],
        "availability": f["availability"],
        "maintenance_cost": f["maintenance_cost"],
        "downtime_cost": f["downtime_cost"],
        "total_cost": f["total_cost"],
        "crew_utilisation": f["crew_utilisation"],
    }


def asset_rows(result: dict[str, Any], start: date, baseline: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    before = {a["asset_id"]: a for a in baseline["assets"]} if baseline else {}
    rows = []
    for a in result["assets"]:
        rec = a["recommendation"]
        base = before.get(a["asset_id"])
        rows.append({
            "asset_id": a["asset_id"], "name": a["name"],
            "rul_days": a["rul_days"], "baseline_rul_days": base["rul_days"] if base else None,
            "ttf_days": a["ttf_days"], "rul_histogram": a["rul_histogram"],
            "baseline_rul_histogram": base["rul_histogram"] if base else None,
            "failure_probability": a["failure_probability"],
            "baseline_failure_probability": base["failure_probability"] if base else None,
            "failure_probability_horizon": a["failure_probability_horizon"],
            "expected_failures": a["expected_failures"], "expected_preventive": a["expected_preventive"],
            "downtime_hours": a["downtime_hours"], "availability": a["availability"],
            "maintenance_cost": a["maintenance_cost"], "downtime_cost": a["downtime_cost"], "total_cost": a["total_cost"],
            "recommendation": {
                "action": rec["action"], "day": rec["day"], "operating_hours": rec["operating_hours"],
                "interval_hours": rec.get("interval_hours"),
                "within_horizon": rec["within_horizon"], "saving_pct": rec["saving_pct"], "reason": rec["reason"],
                "date": recommended_date(start, rec["day"]),
                # the engine's own check of the recommendation (absent from results stored before it)
                "simulated": rec.get("simulated"),
                "theory_cost_per_hour": rec.get("theory_cost_per_hour"),
                "theory_saving_pct": rec.get("theory_saving_pct"),
            },
        })
    return rows


def comparison_for(run: ScenarioRun, others: Sequence[ScenarioRun] = ()) -> dict[str, Any] | None:
    """This run's scenario (and other finished runs') against this run's baseline."""
    results = run.results or {}
    baseline = results.get(const.VARIANT_BASELINE)
    if baseline is None:
        return None
    if not others:
        return run.comparison
    scenarios = [results[const.VARIANT_SCENARIO]] + [o.results[const.VARIANT_SCENARIO] for o in others]
    return compare(baseline, scenarios)


def run_page_data(run: ScenarioRun, others: Sequence[ScenarioRun] = ()) -> dict[str, Any]:
    """The JSON handed to the run page (json_script): progress, and results once done."""
    if run.state == ScenarioRun.State.DONE:
        done, checked = run.total, run.check_total
    else:  # where the chunks are now; the socket takes over from there
        now = snapshot(run.id) or {"done": 0, "checked": 0}
        done, checked = now["done"], now["checked"]
    data: dict[str, Any] = {
        "run": {"id": run.id, "state": run.state, "total": run.total, "done": done, "check_total": run.check_total, "checked": checked,
                "error": run.error, "ws_path": ws_path(run.id), "status_url": f"/scenarios/runs/{run.id}/status/"},
        "results": None,
    }
    if run.state != ScenarioRun.State.DONE or not run.results:
        return data
    start = run.created_at.date()
    scenario = run.results[const.VARIANT_SCENARIO]
    baseline = run.results.get(const.VARIANT_BASELINE)
    data["results"] = {
        "start_date": start.isoformat(),
        "day_grid": scenario["day_grid"],
        "horizon_days": scenario["horizon_days"],
        "names": {"scenario": scenario["name"], "baseline": baseline["name"] if baseline else None},
        "fleet": {"scenario": _fleet(scenario), "baseline": _fleet(baseline) if baseline else None},
        "assets": asset_rows(scenario, start, baseline),
        "comparison": comparison_for(run, others),
    }
    return data


def csv_rows(run: ScenarioRun) -> list[list[Any]]:
    """The engine's CSV rows of each variant (scenario first), with the run's dates added."""
    rows: list[list[Any]] = []
    start = run.created_at.date()
    for variant in (const.VARIANT_SCENARIO, const.VARIANT_BASELINE):
        result = (run.results or {}).get(variant)
        if result is None:
            continue
        part = to_csv_rows(result)
        day_col = part[0].index("recommended_day")
        if not rows:
            rows.append(["run", "variant", *part[0], "recommended_date"])
        for row in part[1:]:
            rows.append([run.id, variant, *row, recommended_date(start, row[day_col] if row[day_col] != "" else None) or ""])
    return rows
