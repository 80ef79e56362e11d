"""The REST API as another system uses it: tokens, the role matrix over every endpoint, the
OpenAPI schema, telemetry pages and exports, acknowledging, rollouts' two-person rule, bad input."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.urls import URLPattern
from django.utils import timezone

from api.models import ApiToken
from edge_node.models import AuditEvent
from edge_node.rollouts.models import ModelArtifact, Rollout
from ingest.timeseries.writes import write_rows
from tests.factories import make_asset, make_site
from twins.models import Alert, TwinSnapshot, TwinState

pytestmark = pytest.mark.django_db


def api_paths() -> list[str]:
    from api import urls

    return [str(p.pattern) for p in urls.urlpatterns if isinstance(p, URLPattern) and str(p.pattern).startswith("api/v1/")]


def concrete(path: str, ids: dict[str, int]) -> str:
    return "/" + path.replace("<id:pk>", str(ids.get(path, 0)))


def test_it_gives_a_token_once_records_its_use_and_revokes_it(client, manager, fleet):
    client.force_login(manager)
    page = client.post("/api/tokens/", {"name": "CMMS"}, follow=True).content.decode()
    token = ApiToken.objects.get(user=manager, name="CMMS")
    key = page.split('id="new-key">')[1].split("<")[0]
    assert key.startswith(f"aiot_{token.prefix}_") and key not in client.get("/api/tokens/").content.decode()
    assert token.key_hash not in key and token.last_used_at is None
    client.logout()
    response = client.get("/api/v1/sites/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200 and [s["name"] for s in response.json()["results"]] == [fleet.site.name]
    token.refresh_from_db()
    assert token.last_used_at is not None
    client.force_login(manager)
    client.post(f"/api/tokens/{token.id}/revoke/")
    client.logout()
    response = client.get("/api/v1/sites/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 401 and "not valid" in response.json()["error"]


def test_a_token_name_keeps_only_printable_characters(client, manager):
    client.force_login(manager)
    client.post("/api/tokens/", {"name": "CM\x00MS\x1b[31m \u202e"})
    assert list(ApiToken.objects.filter(user=manager).values_list("name", flat=True)) == ["CMMS[31m"]


def test_it_holds_the_roles_of_the_ui_over_every_endpoint(client, manager, planner, admin_user, outsider, fleet, token_of):
    asset = fleet.assets[0]
    TwinState.objects.create(asset=asset, computed_at=timezone.now(), health=0.8)
    alert = Alert.objects.create(site=fleet.site, asset=asset, severity="warning", title="hot", opened_at=timezone.now())
    ids = {p: asset.id for p in api_paths() if p.startswith("api/v1/assets/<id:pk>")}
    ids["api/v1/alerts/<id:pk>/acknowledge/"] = alert.id
    # Expected GET status per role (None: the endpoint is write-only).
    reads = {"manager": 200, "planner": 200, "admin": 200}
    only = {"api/v1/rollouts/": ("admin",), "api/v1/audit/": ("admin",), "api/v1/exports/audit.csv": ("admin",),
            "api/v1/scenario-runs/": ("planner", "admin"), "api/v1/scenario-runs/<id:pk>/": ("planner", "admin"),
            "api/v1/scenario-runs/<id:pk>/csv/": ("planner", "admin")}
    writes = {"api/v1/alerts/<id:pk>/acknowledge/": ("manager", "admin"), "api/v1/rollouts/<id:pk>/approve/": ("admin",)}
    headers = {name: token_of(u) for name, u in (("manager", manager), ("planner", planner), ("admin", admin_user), ("outsider", outsider))}
    export_q = f"?asset={asset.id}"
    checked = 0
    for path in api_paths():
        url = concrete(path, ids) + (export_q if path.endswith(("telemetry.csv", "telemetry.parquet")) else "?metric=temperature_c" if path.endswith("readings/") else "")
        assert client.get(url).status_code == 401, f"anonymous {url}"
        for name, header in headers.items():
            if path in writes:
                status = client.post(url, {}, content_type="application/json", HTTP_AUTHORIZATION=header).status_code
                allowed = name in writes[path]
                # allowed: the action runs (200), or is refused for the state (404/409), never for the role
                assert (status not in (401, 403)) == allowed, f"{name} POST {url}: {status}"
            else:
                status = client.get(url, HTTP_AUTHORIZATION=header).status_code
                allowed = name in only.get(path, tuple(reads))
                if "scenario-runs/<id:pk>" in path:
                    assert status == (404 if allowed else 403), f"{name} GET {url}: {status}"
                else:
                    assert status == (200 if allowed else 403), f"{name} GET {url}: {status}"
            checked += 1
    assert checked == 4 * len(api_paths()) and len(api_paths()) >= 20
    # site visibility: another site's asset is not found, for every asset endpoint
    hidden = make_asset(make_site(), fleet.asset_type, None)
    for path in ids:
        if path.startswith("api/v1/assets/"):
            assert client.get(concrete(path, {path: hidden.id}), HTTP_AUTHORIZATION=headers["manager"]).status_code == 404, path


def test_it_serves_a_valid_openapi_schema_naming_every_endpoint(client, manager):
    from openapi_spec_validator import validate

    client.force_login(manager)
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    validate(schema)
    documented = set(schema["paths"])
    for path in api_paths():
        assert "/" + path.replace("<id:pk>", "{id}") in documented, path
    assert schema["components"]["securitySchemes"]["tokenAuth"]["name"] == "Authorization"
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content and b"cdn" not in docs.content.lower()


def _store(asset, metric, start: datetime, n: int, step_s: float = 10.0) -> list[tuple[datetime, float]]:
    rows = [(start + timedelta(seconds=i * step_s), float(i % 50)) for i in range(n)]
    write_rows([(t, asset.id, metric.id, v) for t, v in rows])
    return rows


def test_it_pages_raw_readings_and_buckets_series_and_exports_them(client, manager, fleet, token_of):
    asset, metric = fleet.assets[0], fleet.metrics["temperature_c"]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    rows = _store(asset, metric, start, 250)
    auth = {"HTTP_AUTHORIZATION": token_of(manager)}
    q = urlencode({"metric": "temperature_c", "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()})
    got, cursor, pages = [], None, 0
    while True:
        r = client.get(f"/api/v1/assets/{asset.id}/readings/?{q}&limit=100" + (f"&cursor={cursor}" if cursor else ""), **auth).json()
        got += r["readings"]
        pages += 1
        cursor = r["next_cursor"]
        if not cursor:
            break
    assert pages == 3 and [(round(t), v) for t, v in got] == [(round(t.timestamp()), v) for t, v in rows]
    series = client.get(f"/api/v1/assets/{asset.id}/series/?{q}&bucket=600", **auth).json()
    buckets = series["series"]["temperature_c"]
    assert sum(b[4] for b in buckets) == 250 and series["columns"] == ["t", "min", "avg", "max", "count"]
    first = [v for t, v in rows if t.timestamp() < buckets[0][0] + 600]
    assert buckets[0][2] == pytest.approx(sum(first) / len(first))
    latest = client.get(f"/api/v1/assets/{asset.id}/latest/", **auth)
    assert latest.status_code == 200
    export = client.get(f"/api/v1/exports/telemetry.csv?site={fleet.site.id}&{q.split('&', 1)[1]}", **auth)
    assert export.status_code == 200 and export["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert table[0] == ["time", "asset", "metric", "value"] and len(table) == 251
    assert table[1][1:3] == [asset.key, "temperature_c"] and table[1][0].startswith(start.strftime("%Y-%m-%dT%H:%M:%S"))
    assert [float(r[3]) for r in table[1:]] == [v for _t, v in rows]


def test_it_acknowledges_alerts_over_the_api_once(client, manager, planner, fleet, token_of):
    alert = Alert.objects.create(site=fleet.site, asset=fleet.assets[0], severity="critical", title="Winding hot", opened_at=timezone.now())
    url = f"/api/v1/alerts/{alert.id}/acknowledge/"
    assert client.post(url, {"comment": "on it"}, content_type="application/json", HTTP_AUTHORIZATION=token_of(planner)).status_code == 403
    r = client.post(url, {"comment": "on it"}, content_type="application/json", HTTP_AUTHORIZATION=token_of(manager))
    assert r.status_code == 200 and r.json()["state"] == "acknowledged" and r.json()["acknowledged_by"] == "fm"
    again = client.post(url, {}, content_type="application/json", HTTP_AUTHORIZATION=token_of(manager))
    assert again.status_code == 409 and "acknowledged already" in again.json()["error"]
    listed = client.get("/api/v1/alerts/?state=acknowledged&severity=critical", HTTP_AUTHORIZATION=token_of(manager)).json()["results"]
    assert [a["id"] for a in listed] == [alert.id]
    exported = client.get("/api/v1/exports/alerts.csv", HTTP_AUTHORIZATION=token_of(manager))
    assert "Winding hot" in b"".join(exported.streaming_content).decode()


def test_it_keeps_the_two_person_rule_for_rollouts_over_the_api(client, admin_user, fleet, token_of, django_user_model):
    from django.contrib.auth.models import Group

    second = django_user_model.objects.create_user("admin2", password="x")
    second.groups.add(Group.objects.get(name="admin"))
    model = ModelArtifact.objects.create(name="anom", version="2", kind="anomaly", sha256="0" * 64, signature="s", size=1, file_path="/dev/null")
    fleet.node.revoked_at = None
    fleet.node.save()
    r = client.post("/api/v1/rollouts/", {"model": model.id, "site": fleet.site.id}, content_type="application/json", HTTP_AUTHORIZATION=token_of(admin_user))
    assert r.status_code == 201, r.content
    rollout_id = r.json()["id"]
    own = client.post(f"/api/v1/rollouts/{rollout_id}/approve/", content_type="application/json", HTTP_AUTHORIZATION=token_of(admin_user))
    assert own.status_code == 409 and "another admin" in own.json()["error"]
    ok = client.post(f"/api/v1/rollouts/{rollout_id}/approve/", content_type="application/json", HTTP_AUTHORIZATION=token_of(second))
    assert ok.status_code == 200 and ok.json()["approver"] == "admin2"
    assert Rollout.objects.get(id=rollout_id).state == "approved"
    assert AuditEvent.objects.filter(action__icontains="approved").exists()


@pytest.mark.parametrize(("extra", "words"), [
    ({"nodes": ["{node}", "does-not-exist"]}, "does-not-exist"),
    ({"nodes": ["{node}", "{node}"]}, "listed twice"),
    ({"max_load_failures": 2147483648}, "less than or equal"),
    ({"max_p99_latency_ms": 1e308}, "less than or equal"),
])
def test_a_rollout_proposal_with_unknown_nodes_or_absurd_gates_is_a_400_and_stores_nothing(client, admin_user, fleet, token_of, extra, words):
    model = ModelArtifact.objects.create(name="anom", version="2", kind="anomaly", sha256="0" * 64, signature="s", size=1, file_path="/dev/null")
    body = {"model": model.id, **json.loads(json.dumps(extra).replace("{node}", fleet.node.node_id))}
    r = client.post("/api/v1/rollouts/", body, content_type="application/json", HTTP_AUTHORIZATION=token_of(admin_user))
    assert r.status_code == 400 and words in " ".join(next(iter(r.json()["fields"].values()))), r.content
    assert set(r.json()["fields"]) == set(extra) and not Rollout.objects.exists()


@pytest.mark.parametrize(("url", "field"), [
    ("/api/v1/assets/{a}/series/?metrc=temperature_c", "metrc"),
    ("/api/v1/assets/{a}/series/?bucket=ten", "bucket"),
    ("/api/v1/assets/{a}/series/?start=1900-01-01T00:00:00Z", "start"),
    ("/api/v1/assets/{a}/series/?metric=pressure", "metric"),
    ("/api/v1/assets/{a}/readings/?metric=temperature_c&limit=1000000", "limit"),
    ("/api/v1/assets/{a}/readings/?metric=temperature_c&cursor=@@", "cursor"),
    ("/api/v1/alerts/?limit=100000", "limit"),
    ("/api/v1/alerts/?severity=apocalyptic", "severity"),
    ("/api/v1/alerts/?sort=id", "sort"),
    ("/api/v1/exports/telemetry.csv?site={s}&start=0&end=4102444800", "start"),
    # Ids and numbers: ASCII digits only, no more than a 64-bit column holds.
    ("/api/v1/assets/?site=%C2%B2", "site"),  # '²' (str.isdigit says yes)
    ("/api/v1/assets/?site=%D9%A1%D9%A2", "site"),  # Arabic-Indic 12
    ("/api/v1/alerts/?asset=9223372036854775808", "asset"),
    ("/api/v1/alerts/?site=" + "9" * 5000, "site"),
    ("/api/v1/alerts/?limit=%C2%B2", "limit"),
    ("/api/v1/exports/telemetry.csv?site=9223372036854775808", "site"),
    ("/api/v1/exports/telemetry.csv?asset={a}&site={s}", "site"),
    # Times the platform cannot hold: a 400, never a 500 or a download that never ends.
    ("/api/v1/assets/{a}/series/?end=0001-01-01T00:00:00Z", "end"),
    ("/api/v1/assets/{a}/readings/?metric=temperature_c&end=0001-01-01T12:00:00%2B14:00", "end"),
    ("/api/v1/exports/alerts.csv?start=0001-01-01T00:00:00%2B01:00&end=0001-01-02T00:00:00Z", "start"),
    ("/api/v1/exports/alerts.csv?start=9999-12-31T20:00:00Z&end=9999-12-31T23:00:00-14:00", "start"),
    ("/api/v1/exports/telemetry.csv?asset={a}&start=2026-01-01T00:00:00%00", "start"),
    ("/api/v1/assets/{a}/series/?start=%D9%A1%D9%A2%D9%A3", "start"),
    # Cursors: only what the API wrote.
    ("/api/v1/alerts/?cursor=bogus", "cursor"),
    ("/api/v1/assets/{a}/readings/?metric=temperature_c&cursor=bmFu", "cursor"),  # base64 of "nan"
    ("/api/v1/assets/{a}/?bogus=1", "bogus"),
    ("/api/v1/assets/{a}/twin/?bogus=1", "bogus"),
])
def test_it_answers_bad_input_with_a_4xx_naming_the_field(client, manager, fleet, token_of, url, field):
    r = client.get(url.format(a=fleet.assets[0].id, s=fleet.site.id), HTTP_AUTHORIZATION=token_of(manager))
    assert r.status_code == 400, r.content
    body = r.json()
    assert field in body["fields"] and field in body["error"]


@pytest.mark.parametrize("path", ["/api/v1/assets/9223372036854775808/twin/", "/api/v1/assets/" + "9" * 5000 + "/", "/api/v1/assets/-1/",
                                  "/api/v1/assets/%C2%B2/", "/api/v1/nope/"])
def test_an_unknown_api_path_or_an_impossible_id_is_a_json_404(client, manager, fleet, token_of, path):
    r = client.get(path, HTTP_AUTHORIZATION=token_of(manager))
    assert r.status_code == 404 and r["Content-Type"] == "application/json" and "Not found" in r.json()["error"]


def test_a_page_with_an_impossible_id_is_the_404_page(client, manager):
    client.force_login(manager)
    r = client.get("/assets/9223372036854775808/")
    assert r.status_code == 404 and r["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(("body", "field"), [
    ({"policy": [1]}, "params.policy"),
    ({"policy": "x"}, "params.policy"),
    ({"policy": {"name": "sometimes"}}, "params.policy.name"),
    ({"policy": {"name": "time_based", "interval_hours": "NaN"}}, "params.policy.interval_hours"),
    ({"bogus_key": 1}, "params.bogus_key"),
    ({"a\x00b": "\x00"}, "params.a\x00b"),
    ({"load_factor": "Infinity"}, "params.load_factor"),
    ({"replications": 10**9}, "params.replications"),
    ({"seed": -1}, "params.seed"),
])
def test_scenario_params_are_checked_field_by_field_and_nothing_is_stored(client, planner, token_of, body, field):
    from tests.scenarios.factories import make_site_with_twins
    from twins.scenarios.models import Scenario

    site, assets = make_site_with_twins(1, members=[planner])
    raw = json.dumps({"name": "x", "site": site.id, "assets": [assets[0].id], "params": body})
    r = client.post("/api/v1/scenario-runs/", raw, content_type="application/json", HTTP_AUTHORIZATION=token_of(planner))
    assert r.status_code == 400, r.content
    assert field in r.json()["fields"] and "ErrorDetail" not in r.json()["error"]
    assert not Scenario.objects.exists()


@pytest.mark.parametrize(("body", "field"), [
    ({"assets": [1e30]}, "assets.0"),
    ({"assets": [9223372036854775808]}, "assets.0"),
    ({"assets": [[1]]}, "assets.0"),
    ({"site": 2**63}, "site"),
])
def test_scenario_ids_are_checked_with_readable_messages(client, planner, token_of, body, field):
    from tests.scenarios.factories import make_site_with_twins

    site, assets = make_site_with_twins(1, members=[planner])
    r = client.post("/api/v1/scenario-runs/", {"name": "x", "site": site.id, "assets": [assets[0].id], **body}, content_type="application/json",
                    HTTP_AUTHORIZATION=token_of(planner))
    assert r.status_code == 400 and field in r.json()["fields"], r.content
    assert "ErrorDetail" not in r.json()["error"]


@pytest.mark.parametrize("raw", ["5", "true", '[{"a": 1}]', "[[1]]", '"abc"', "[" * 100_000 + "]" * 100_000])
def test_a_body_that_is_not_an_object_or_nests_too_deep_is_a_400(client, admin_user, token_of, raw):
    for path in ("/api/v1/rollouts/1/approve/", "/api/v1/rollouts/", "/api/v1/scenario-runs/"):
        r = client.post(path, raw, content_type="application/json", HTTP_AUTHORIZATION=token_of(admin_user))
        assert r.status_code == 400 and r["Content-Type"] == "application/json", (path, raw[:20], r.status_code, r.content[:200])


def test_it_refuses_unknown_body_fields_and_stores_nothing(client, manager, fleet, token_of):
    alert = Alert.objects.create(site=fleet.site, asset=fleet.assets[0], severity="warning", title="x", opened_at=timezone.now())
    r = client.post(f"/api/v1/alerts/{alert.id}/acknowledge/", {"comment": "ok", "state": "cleared"}, content_type="application/json",
                    HTTP_AUTHORIZATION=token_of(manager))
    assert r.status_code == 400 and r.json()["fields"] == {"state": ["Unknown field."]}
    assert Alert.objects.get(id=alert.id).state == "open"
    wrong = client.post(f"/api/v1/alerts/{alert.id}/acknowledge/", {"comment": ["a"] * 3}, content_type="application/json", HTTP_AUTHORIZATION=token_of(manager))
    assert wrong.status_code == 400 and "comment" in wrong.json()["fields"]


def test_it_throttles_per_token(client, manager, fleet, token_of, settings):
    from django.core.cache import cache
    from rest_framework.throttling import SimpleRateThrottle

    cache.clear()
    old = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = {"token": "3/min"}
    try:
        one, two = token_of(manager), token_of(manager)
        codes = [client.get("/api/v1/sites/", HTTP_AUTHORIZATION=one).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert client.get("/api/v1/sites/", HTTP_AUTHORIZATION=two).status_code == 200
    finally:
        SimpleRateThrottle.THROTTLE_RATES = old
        cache.clear()


def test_it_shows_twin_history(client, manager, fleet, token_of):
    asset = fleet.assets[0]
    now = timezone.now()
    TwinSnapshot.objects.bulk_create([TwinSnapshot(asset=asset, computed_at=now - timedelta(hours=i), health=1 - i / 10, rul_median=100 - i) for i in range(3)])
    r = client.get(f"/api/v1/assets/{asset.id}/twin/history/", HTTP_AUTHORIZATION=token_of(manager)).json()
    assert sorted(x["rul_median"] for x in r["results"]) == [98, 99, 100]


def test_a_planner_creates_runs_and_downloads_a_scenario_over_the_api(client, planner, manager, token_of):
    from tests.scenarios.factories import PARAMS, make_site_with_twins
    from twins.scenarios import jobs
    from twins.scenarios.models import Scenario

    site, assets = make_site_with_twins(2, members=[planner, manager])
    body = {"name": "More load", "site": site.id, "assets": [a.id for a in assets], "params": {**PARAMS, "replications": 100}}
    auth = {"HTTP_AUTHORIZATION": token_of(planner)}
    assert client.post("/api/v1/scenario-runs/", body, content_type="application/json", HTTP_AUTHORIZATION=token_of(manager)).status_code == 403
    bad = client.post("/api/v1/scenario-runs/", {**body, "params": {"replications": "many"}}, content_type="application/json", **auth)
    assert bad.status_code == 400 and bad.json()["fields"] == {"params.replications": ["A valid integer is required."]} and not Scenario.objects.exists()  # nothing stored half-way
    r = client.post("/api/v1/scenario-runs/", body, content_type="application/json", **auth)
    assert r.status_code == 201, r.content
    run_id = r.json()["id"]
    assert client.get(f"/api/v1/scenario-runs/{run_id}/csv/", **auth).status_code == 409  # not done yet
    assert jobs.run_all_chunks(run_id)["status"] == "done"
    detail = client.get(f"/api/v1/scenario-runs/{run_id}/", **auth).json()
    assert detail["state"] == "done" and detail["results"]
    table = b"".join(client.get(f"/api/v1/scenario-runs/{run_id}/csv/", **auth).streaming_content).decode()
    assert assets[0].name in table and len(table.splitlines()) > 2


def test_a_download_that_fails_part_way_is_logged_and_ends_saying_so(caplog):
    from api.streaming import guarded

    def rows():
        yield b"a,b\n"
        raise OverflowError("date value out of range")

    with caplog.at_level("ERROR", logger="api.streaming"):
        body = b"".join(guarded(rows(), "/api/v1/exports/alerts.csv (alerts.csv)", b"# incomplete\n"))
    assert body == b"a,b\n# incomplete\n"
    assert "alerts.csv" in caplog.text and "OverflowError" in caplog.text
