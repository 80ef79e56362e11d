"""The scenario pages through the Django test client: the form and its errors, roles and
sites, the run page's results and dates, escaping, and the CSV download."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest

from tests.scenarios.factories import make_scenario, make_site_with_twins
from twins.scenarios import jobs
from twins.scenarios.models import Scenario, ScenarioRun
from twins.scenarios.services import start_run

pytestmark = pytest.mark.django_db
EVIL = "<script>alert(1)</script>"


def form_data(**changes):
    data = {
        "name": "Two shifts, more load", "load_factor": "1.2", "speed_factor": "1.0", "hours_per_day": "", "days_per_week": "7",
        "ambient_delta_c": "0", "policy": "condition_based", "health_threshold": "0.2", "interval_hours": "", "lead_time_hours": "",
        "crew_size": "2", "spare_stock": "2", "spare_lead_time_days": "14", "pm_cost": "1000", "cm_cost": "5000",
        "downtime_cost_per_hour": "500", "horizon_days": "365", "replications": "100", "seed": "3", "compare_baseline": "on",
    }
    data.update({k: str(v) for k, v in changes.items()})
    return data


@pytest.fixture
def mine(planner):
    return make_site_with_twins(3, members=[planner])


@pytest.fixture
def finished_run(mine, planner):
    site, assets = mine
    scenario = make_scenario(site, assets, planner, name=f"Hot summer {EVIL}", replications=100)
    run = start_run(scenario.id, planner, dispatch=False)
    jobs.run_all_chunks(run.id)
    run.refresh_from_db()
    assert run.state == "done"
    return run


def test_it_maps_the_engine_bounds_to_field_errors(client, planner, mine):
    client.force_login(planner)
    site, _ = mine
    response = client.post("/scenarios/new/", form_data(site=site.id, load_factor="7", horizon_days="99999", replications="0",
                                                       policy="time_based", crew_size="0"))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors["load_factor"] == ["Must be in [0.1, 3]."]
    assert errors["horizon_days"] == ["Must be between 1 and 1826."]
    assert errors["replications"] == ["Must be between 1 and 10000."]
    assert errors["interval_hours"] == ["Required by the time_based policy."]
    assert "crew_size" in errors
    html = response.content.decode()
    assert "Must be in [0.1, 3]." in html
    assert not Scenario.objects.exists()


def test_it_refuses_no_assets_and_assets_of_two_sites(client, planner, mine):
    client.force_login(planner)
    _site, assets = mine
    _other_site, other_assets = make_site_with_twins(1, members=[planner])
    empty = client.post("/scenarios/new/", form_data())
    assert "Pick a site or one or more assets." in empty.context["form"].errors["site"]
    mixed = client.post("/scenarios/new/", form_data(assets=[assets[0].id, other_assets[0].id]) | {"assets": [assets[0].id, other_assets[0].id]})
    assert mixed.context["form"].errors["assets"] == ["Pick assets of one site (or a whole site)."]


def test_it_puts_the_asset_year_budget_on_the_replications_field(client, planner):
    site, _ = make_site_with_twins(45, members=[planner])
    client.force_login(planner)
    response = client.post("/scenarios/new/", form_data(site=site.id, replications="10000", horizon_days="1826"))
    assert response.status_code == 200
    [message] = response.context["form"].errors["replications"]
    assert "exceeds the limit of 2,000,000 asset-years" in message
    assert not Scenario.objects.exists()


def test_it_creates_a_scenario_and_its_run_for_a_planner(client, planner, mine, django_capture_on_commit_callbacks, monkeypatch):
    dispatched = []
    monkeypatch.setattr("twins.scenarios.services.dispatch_run", dispatched.append)
    client.force_login(planner)
    site, assets = mine
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/scenarios/new/", {**form_data(), "assets": [assets[1].id]})
    run = ScenarioRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/scenarios/runs/{run.id}/"
    assert dispatched == [run.id]
    assert list(run.scenario.assets.all()) == [assets[1]] and run.scenario.site == site
    assert run.total == 200  # the what-if and the baseline, 100 replications each
    assert run.specs["scenario"]["load_factor"] == 1.2 and run.specs["scenario"]["policy"] == {
        "name": "condition_based", "interval_hours": None, "health_threshold": 0.2, "lead_time_hours": None,
        "inspection_interval_hours": None, "detection_probability": None, "off_shift": False}
    page = client.get(response["Location"])
    assert page.status_code == 200 and 'id="progress-bar"' in page.content.decode()


def test_it_gives_facility_managers_a_403_and_hides_the_nav_link(client, manager, mine):
    client.force_login(manager)
    for url in ("/scenarios/", "/scenarios/new/"):
        response = client.get(url)
        assert response.status_code == 403
    assert 'href="/scenarios/"' not in client.get("/").content.decode()


def test_it_limits_planners_to_the_scenarios_of_their_sites(client, planner, admin_user, finished_run):
    foreign_site, foreign_assets = make_site_with_twins(1)
    foreign = make_scenario(foreign_site, foreign_assets, admin_user, name="Other site's plan", replications=50)
    foreign_run = start_run(foreign.id, admin_user, dispatch=False)
    client.force_login(planner)
    listing = client.get("/scenarios/").content.decode()
    assert "Hot summer" in listing and "Other site&#x27;s plan" not in listing
    assert client.get(f"/scenarios/runs/{foreign_run.id}/").status_code == 404
    assert client.get(f"/scenarios/runs/{foreign_run.id}/csv/").status_code == 404
    assert client.post(f"/scenarios/runs/{foreign_run.id}/cancel/").status_code == 404
    form = client.get("/scenarios/new/").context["form"]
    assert foreign_site not in form.fields["site"].queryset and foreign_assets[0] not in form.fields["assets"].queryset
    response = client.post("/scenarios/new/", {**form_data(), "assets": [foreign_assets[0].id]})
    assert "assets" in response.context["form"].errors
    client.force_login(admin_user)
    assert client.get(f"/scenarios/runs/{foreign_run.id}/").status_code == 200


def test_it_shows_results_with_recommended_dates_and_escapes_names(client, planner, finished_run):
    client.force_login(planner)
    html = client.get(f"/scenarios/runs/{finished_run.id}/").content.decode()
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    data = json.loads(re.search(r'<script id="run-data" type="application/json">(.*?)</script>', html, re.DOTALL).group(1))
    result = finished_run.results["scenario"]
    assert data["results"]["comparison"]["scenarios"][0]["fleet"]["total_cost"]["scenario"] == result["fleet"]["total_cost"]["mean"]
    start = finished_run.created_at.date()
    for row, asset in zip(data["results"]["assets"], result["assets"]):
        day = asset["recommendation"]["day"]
        expected = None if day is None else (start + timedelta(days=int(day))).isoformat()
        assert row["recommendation"]["date"] == expected
        if expected:
            assert f'<time datetime="{expected}">' in html
    assert any(a["recommendation"]["day"] is not None for a in result["assets"])  # condition-based at 1.2x load: worth planning
    # each recommendation shows the engine's own check of it: cost per operating hour with its interval
    checked = re.findall(r'data-check="simulated">(.*?)</div>', html, re.DOTALL)
    assert len(checked) == len(result["assets"])
    for text, asset in zip(checked, result["assets"]):
        sim = asset["recommendation"]["simulated"]
        assert f"Simulated ({sim['replications']} runs, {sim['horizon_days']} days)" in text
        assert sim["quiet"] or (f"{sim['cost_per_hour']:.2f} per operating h" in text and "95 % CI" in text)
    assert "Assumptions" in html and "Bearing (mechanical) life" in html
    for note in finished_run.calibration[:-1]:
        assert "twin RUL median" in note["statement"]


def test_it_exports_the_engine_figures_as_csv(client, planner, finished_run):
    client.force_login(planner)
    response = client.get(f"/scenarios/runs/{finished_run.id}/csv/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith(f'attachment; filename="scenario-{finished_run.id}-hot-summer')
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["variant"] for r in rows] == ["scenario"] * 4 + ["baseline"] * 4
    assert [r["asset_id"] for r in rows[:4]] == [a["asset_id"] for a in finished_run.results["scenario"]["assets"]] + ["FLEET"]
    fleet = rows[3]
    assert float(fleet["total_cost_mean"]) == finished_run.results["scenario"]["fleet"]["total_cost"]["mean"]
    assert float(fleet["total_cost_p90"]) == finished_run.results["scenario"]["fleet"]["total_cost"]["p90"]
    first = finished_run.results["scenario"]["assets"][0]
    assert float(rows[0]["rul_p50_days"]) == first["rul_days"]["p50"]
    if first["recommendation"]["day"] is not None:
        assert rows[0]["recommended_date"] == (finished_run.created_at.date() + timedelta(days=int(first["recommendation"]["day"]))).isoformat()


def test_it_compares_several_runs_against_the_baseline(client, planner, mine, finished_run):
    site, assets = mine
    other = make_scenario(site, assets, planner, name="Time-based", replications=100, policy={"name": "time_based", "interval_hours": 1200.0})
    other_run = start_run(other.id, planner, dispatch=False)
    jobs.run_all_chunks(other_run.id)
    client.force_login(planner)
    response = client.get(f"/scenarios/runs/{finished_run.id}/?with={other_run.id}")
    comparison = response.context["page"]["results"]["comparison"]
    assert [s["name"] for s in comparison["scenarios"]] == [finished_run.scenario.name, "Time-based"]
    other_run.refresh_from_db()
    assert comparison["scenarios"][1]["fleet"]["total_cost"]["scenario"] == other_run.results["scenario"]["fleet"]["total_cost"]["mean"]


def test_it_cancels_a_queued_run_from_its_page_and_says_so_twice(client, planner, mine):
    site, assets = mine
    started = start_run(make_scenario(site, assets, planner, replications=100).id, planner, dispatch=False)
    client.force_login(planner)
    page = client.get(f"/scenarios/runs/{started.id}/").content.decode()
    assert 'id="cancel-run"' in page and 'id="download-csv"' not in page
    response = client.post(f"/scenarios/runs/{started.id}/cancel/", follow=True)
    assert ScenarioRun.objects.get(id=started.id).state == "cancelled"
    assert "Run cancelled." in response.content.decode() and 'id="cancel-run"' not in response.content.decode()
    again = client.post(f"/scenarios/runs/{started.id}/cancel/", follow=True)
    assert "This run is cancelled already." in again.content.decode()
    assert client.get(f"/scenarios/runs/{started.id}/csv/").status_code == 404  # no result to export


def test_it_gives_facility_managers_a_403_on_runs_even_at_their_site(client, manager, planner, finished_run):
    finished_run.scenario.site.members.add(manager)
    client.force_login(manager)
    for url in (f"/scenarios/runs/{finished_run.id}/", f"/scenarios/runs/{finished_run.id}/csv/"):
        assert client.get(url).status_code == 403
    assert client.post(f"/scenarios/runs/{finished_run.id}/cancel/").status_code == 403
    assert client.post(f"/scenarios/{finished_run.scenario.id}/rerun/").status_code == 403
    assert ScenarioRun.objects.count() == 1


def test_it_shows_a_run_without_baseline_and_exports_only_its_rows(client, planner, mine):
    site, assets = mine
    started = start_run(make_scenario(site, assets, planner, replications=60, compare_baseline=False).id, planner, dispatch=False)
    jobs.run_all_chunks(started.id)
    client.force_login(planner)
    response = client.get(f"/scenarios/runs/{started.id}/")
    assert response.status_code == 200 and 'id="comparison-chart"' not in response.content.decode()
    assert response.context["page"]["results"]["fleet"]["baseline"] is None
    rows = list(csv.DictReader(io.StringIO(client.get(f"/scenarios/runs/{started.id}/csv/").content.decode())))
    assert {r["variant"] for r in rows} == {"scenario"} and len(rows) == len(assets) + 1


def test_it_answers_the_status_poll_of_visible_runs_only(client, planner, mine, admin_user):
    site, assets = mine
    started = start_run(make_scenario(site, assets, planner, replications=100).id, planner, dispatch=False)
    chunk = started.chunks.filter(phase="simulate").first()
    jobs.simulate_chunk(chunk.id)
    client.force_login(planner)
    status = client.get(f"/scenarios/runs/{started.id}/status/").json()
    assert status == {"type": "scenario.progress", "run": started.id, "state": "running", "done": chunk.stop - chunk.start, "total": 200,
                      "checked": 0, "check_total": 200, "error": ""}
    foreign_site, foreign_assets = make_site_with_twins(1)
    foreign = start_run(make_scenario(foreign_site, foreign_assets, admin_user, replications=50).id, admin_user, dispatch=False)
    assert client.get(f"/scenarios/runs/{foreign.id}/status/").status_code == 404
