"""The planner's question on the demo: North Plant's twins as the demo makes them (its fleet plan,
its recent history, RUL models trained on the simulator's lives of tens of thousands of hours),
then the four maintenance policies over a year. Relations a maintenance planner expects, not
exact numbers: running to failure fails most and maintains nothing; preventive, condition-based
and RUL-based policies avoid failures at a cost; the policy's setting changes the answer; the
baseline is a plausible healthy site (a few failures per year among 18 machines, availability
above 99 %)."""

from __future__ import annotations

import pytest

from edge_node.fleet_history import backfill
from twins.models import Site, TwinState
from twins.rul_training import train_simulated_model
from twins.scenarios import const, jobs
from twins.scenarios.services import create_scenario, start_run
from twins.twin_refresh import refresh_twins
from web.demo import load_demo

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

PARAMS = {
    "load_factor": 1.0, "speed_factor": 1.0, "hours_per_day": None, "days_per_week": 7, "ambient_delta_c": 0.0,
    "crew_size": 2, "spare_stock": 2, "spare_lead_time_days": 14.0, "horizon_days": 365, "replications": 150, "seed": 11,
    "pm_cost": 1000.0, "cm_cost": 5000.0, "downtime_cost_per_hour": 500.0,
}
POLICIES = {
    "run_to_failure": {"name": "run_to_failure"},
    "time_based": {"name": "time_based", "interval_hours": 5000.0},
    "time_based_long": {"name": "time_based", "interval_hours": 20000.0},
    "condition_based": {"name": "condition_based", "health_threshold": 0.2},
    "rul_based": {"name": "rul_based", "lead_time_hours": 500.0},
}


def fleet_result(site, policy: dict, seen: dict | None = None) -> dict:
    scenario = create_scenario(None, name=f"North Plant, {policy['name']}", site=site, assets=list(site.assets.all()), params={**PARAMS, "policy": policy},
                               compare_baseline=False)
    run = start_run(scenario.id, dispatch=False)
    assert jobs.run_all_chunks(run.id)["status"] == "done"
    run.refresh_from_db()
    if seen is not None:
        seen.update(run.results[const.VARIANT_SCENARIO])
    return run.results[const.VARIANT_SCENARIO]["fleet"]


def test_the_demo_what_if_answers_the_planners_question(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    load_demo()
    for type_key in ("induction_motor", "centrifugal_pump"):  # North Plant's types; small forests, the demo's lives and caps
        train_simulated_model(type_key, units=6, n_estimators=20, seed=1)
    backfill(days=1.0 / 24)  # the demo fleet's last hour: the twins' 30-minute window
    site = Site.objects.get(key="north-plant")
    refresh_twins(asset_ids=list(site.assets.values_list("id", flat=True)), broadcast=False)
    twins = list(TwinState.objects.filter(asset__site=site))
    assert len(twins) == 18
    # Twins of a believable site: most show no wear yet or months left; a few are near the end.
    assert sum(t.health >= 0.5 for t in twins) >= 12 and any(t.rul_median < 1000 for t in twins)
    assert all(t.degradation_rate is None or t.degradation_rate > 0 for t in twins)

    baseline: dict = {}
    results = {name: fleet_result(site, policy, baseline if name == "run_to_failure" else None) for name, policy in POLICIES.items()}
    rtf = results["run_to_failure"]
    # Every recommendation carries the engine's own check: a cost per operating hour inside its
    # interval, a saving only where a replacement is recommended, a date not in the past.
    for asset in baseline["assets"]:
        rec, sim = asset["recommendation"], asset["recommendation"]["simulated"]
        low, high = sim["cost_per_hour_ci95"]
        assert 0 <= low <= sim["cost_per_hour"] <= high, (asset["name"], sim)
        assert rec["cost_per_hour"] == sim["cost_per_hour"] and rec["saving_pct"] == sim["saving_pct"]
        if rec["action"] == "preventive":
            assert rec["day"] >= 0 and rec["interval_hours"] > 0, rec
        else:
            assert sim["cost_per_hour"] == sim["run_to_failure_cost_per_hour"]
        print(asset["name"], rec["action"], rec["day"], rec["interval_hours"], rec["theory_cost_per_hour"], sim)

    # A plausible healthy site run to failure for a year: a few failures among 18 machines.
    assert 0.5 <= rtf["expected_failures"] <= 0.8 * 18, rtf["expected_failures"]
    assert rtf["expected_preventive"] == 0.0 and rtf["availability"]["mean"] > 0.99
    for name in ("time_based", "condition_based", "rul_based"):
        fleet = results[name]
        # Maintaining ahead avoids failures, at the cost of preventive jobs.
        assert fleet["expected_preventive"] > 0.0, name
        assert fleet["expected_failures"] < 0.7 * rtf["expected_failures"], (name, fleet["expected_failures"], rtf["expected_failures"])
    # Acting on the twins' RUL avoids nearly every failure, with fewer jobs than a short fixed interval.
    assert results["rul_based"]["expected_failures"] < 0.25 * rtf["expected_failures"]
    assert results["rul_based"]["expected_preventive"] < results["time_based"]["expected_preventive"]
    # The policy's setting matters: a four times longer interval replaces far fewer parts.
    assert results["time_based_long"]["expected_preventive"] < 0.5 * results["time_based"]["expected_preventive"]
    print({name: {k: fleet[k] for k in ("expected_failures", "expected_preventive")} | {"availability": fleet["availability"]["mean"],
           "total_cost": fleet["total_cost"]["mean"]} for name, fleet in results.items()})
