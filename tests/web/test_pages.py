"""The dashboard pages through the Django test client: roles, 403s, escaping, acknowledging,
rules editing, the catch-up endpoint and Plotly served locally."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from ingest import timeseries
from tests.factories import make_asset, make_fleet, make_site
from twins.models import Alert, AlertRule

EVIL = "<script>alert(1)</script>"


@pytest.fixture
def fleet(manager, planner, admin_user):
    return make_fleet(2, members=[manager, planner])


def login(client, user):
    client.force_login(user)
    return client


def open_alert(fleet, asset=None, severity="warning", state="open"):
    asset = asset or fleet.assets[0]
    return Alert.objects.create(site=fleet.site, asset=asset, severity=severity, state=state, title=f"Temp high on {asset.name}", opened_at=timezone.now())


def test_it_redirects_anonymous_users_to_the_login_page(client, db):
    for url in ("/", "/alerts/", "/nodes/", "/rules/", "/assets/1/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_it_shows_a_manager_the_sites_assets_nodes_and_active_alerts(client, manager, fleet):
    open_alert(fleet, severity="critical")
    page = login(client, manager).get("/").content.decode()
    assert fleet.site.name in page
    for asset in fleet.assets:
        assert asset.name in page
    assert fleet.node.node_id in page
    assert re.search(rf'class="tile health-critical" href="/assets/{fleet.assets[0].id}/"', page)
    assert re.search(r'id="open-alerts">1<', page)


def test_it_hides_sites_the_user_is_not_a_member_of(client, manager, fleet):
    other = make_site(name="Hidden Works")
    make_asset(other, fleet.asset_type, None, name="Secret pump")
    page = login(client, manager).get("/").content.decode()
    assert "Hidden Works" not in page and "Secret pump" not in page
    assert client.get(f"/assets/{other.assets.get().id}/").status_code == 404


def test_it_answers_a_user_without_a_role_with_the_403_page(client, outsider, fleet):
    response = login(client, outsider).get("/")
    assert response.status_code == 403
    assert "Not allowed" in response.content.decode()


def test_it_refuses_rule_editing_to_planners_and_managers(client, planner, manager, fleet):
    for user in (planner, manager):
        login(client, user)
        for url in ("/rules/", "/rules/new/"):
            response = client.get(url)
            assert response.status_code == 403
            assert "Not allowed" in response.content.decode() and "admin" in response.content.decode()
        assert client.post("/rules/new/", {"metric": fleet.metrics["temperature_c"].id, "warning_above": 1}).status_code == 403
    assert AlertRule.objects.count() == 0


def test_it_lets_an_admin_create_and_edit_a_rule(client, admin_user, fleet):
    login(client, admin_user)
    metric = fleet.metrics["temperature_c"]
    form = {"metric": metric.id, "warning_above": "80", "critical_above": "100", "hysteresis": "2", "min_duration_s": "10", "enabled": "on"}
    assert client.post("/rules/new/", form).status_code == 302
    rule = AlertRule.objects.get(metric=metric)
    assert (rule.warning_above, rule.critical_above, rule.hysteresis) == (80.0, 100.0, 2.0)
    bad = client.post(f"/rules/{rule.id}/", {**form, "warning_above": "120"})
    assert bad.status_code == 200 and "must not be above the critical" in bad.content.decode()
    assert client.post(f"/rules/{rule.id}/", {**form, "critical_above": "110"}).status_code == 302
    rule.refresh_from_db()
    assert rule.critical_above == 110.0
    assert fleet.asset_type.name in client.get("/rules/").content.decode()
    assert client.post(f"/rules/{rule.id}/delete/").status_code == 302
    assert not AlertRule.objects.exists()


def test_it_escapes_asset_and_site_names_everywhere(client, manager, fleet):
    fleet.site.name = EVIL
    fleet.site.save()
    asset = fleet.assets[0]
    asset.name = EVIL
    asset.save()
    Alert.objects.create(site=fleet.site, asset=asset, title=EVIL, opened_at=timezone.now())
    login(client, manager)
    for url in ("/", f"/assets/{asset.id}/", "/alerts/", "/nodes/"):
        page = client.get(url).content.decode()
        assert EVIL not in page, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page or "\\u003Cscript\\u003E" in page, url


def test_it_lets_a_manager_acknowledge_with_a_comment(client, manager, fleet):
    alert = open_alert(fleet)
    login(client, manager)
    response = client.post(f"/alerts/{alert.id}/ack/", {"comment": "Checked, sensor cable loose", "next": "/alerts/"})
    assert response.status_code == 302 and response["Location"] == "/alerts/"
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by, alert.ack_comment) == ("acknowledged", manager, "Checked, sensor cable loose")
    page = client.get("/alerts/").content.decode()
    assert "Checked, sensor cable loose" in page and manager.username in page
    again = client.post(f"/alerts/{alert.id}/ack/", {"comment": "x"}, follow=True)
    assert "acknowledged already" in again.content.decode()


def test_it_does_not_let_planners_acknowledge_or_reach_other_sites(client, planner, manager, fleet):
    alert = open_alert(fleet)
    assert login(client, planner).post(f"/alerts/{alert.id}/ack/", {"comment": "no"}).status_code == 403
    other = make_site()
    hidden = Alert.objects.create(site=other, title="elsewhere", opened_at=timezone.now())
    assert login(client, manager).post(f"/alerts/{hidden.id}/ack/", {"comment": "no"}).status_code == 404
    alert.refresh_from_db()
    hidden.refresh_from_db()
    assert alert.state == hidden.state == "open"


def test_it_filters_alerts_by_site_severity_asset_and_state(client, manager, fleet):
    warning = open_alert(fleet, fleet.assets[0], "warning")
    critical = open_alert(fleet, fleet.assets[1], "critical")
    cleared = open_alert(fleet, fleet.assets[1], "critical", state="cleared")
    cleared.cleared_at = timezone.now() - timedelta(hours=1)
    cleared.save()
    old = open_alert(fleet, fleet.assets[0], "warning", state="cleared")
    old.cleared_at = timezone.now() - timedelta(days=3)
    old.save()
    login(client, manager)

    def shown(query):
        page = client.get("/alerts/" + query).content.decode()
        return {int(i) for i in re.findall(r'<tr class="alert-row[^"]*" data-alert="(\d+)"', page)}

    assert shown("") == {warning.id, critical.id, cleared.id}  # active, and cleared within 24 h
    assert shown("?state=active") == {warning.id, critical.id}
    assert shown("?state=active&severity=critical") == {critical.id}
    assert shown(f"?asset={fleet.assets[0].id}&state=active") == {warning.id}
    assert shown("?state=cleared") == {cleared.id, old.id}
    assert shown(f"?site={fleet.site.id}&state=all") == {warning.id, critical.id, cleared.id, old.id}


def test_it_shows_history_latest_values_and_the_empty_twin_panel(client, manager, fleet):
    asset, temp = fleet.assets[0], fleet.metrics["temperature_c"]
    now = datetime.now(UTC)
    timeseries.write_rows([(now - timedelta(minutes=m), asset.id, temp.id, 40.0 + m) for m in range(1, 10)])
    timeseries.upsert_latest({(asset.id, temp.id): (now - timedelta(minutes=1), 41.0)})
    page = login(client, manager).get(f"/assets/{asset.id}/?range=15m").content.decode()
    data = json.loads(re.search(r'<script id="asset-data" type="application/json">(.*?)</script>', page, re.DOTALL).group(1))
    assert data["range"] == "15m" and len(data["series"]["temperature_c"]) == 9
    assert re.search(r'data-metric="temperature_c">.*?class="value">41.000<', page, re.DOTALL)
    assert 'id="twin-health"' in page and 'id="twin-rul"' in page and "not yet computed" in page


def test_it_serves_the_readings_after_a_time_for_the_catch_up(client, manager, fleet):
    asset, temp = fleet.assets[0], fleet.metrics["temperature_c"]
    now = datetime.now(UTC)
    timeseries.write_rows([(now - timedelta(seconds=s), asset.id, temp.id, float(s)) for s in (30, 20, 10)])
    login(client, manager)
    delta = client.get(f"/assets/{asset.id}/delta", {"since": (now - timedelta(seconds=25)).timestamp()}).json()
    assert [v for _, v in delta["series"]["temperature_c"]] == [20.0, 10.0]
    assert client.get(f"/assets/{asset.id}/delta").status_code == 400


def test_it_serves_plotly_from_the_installed_package_compressed_and_cached(client, manager, db):
    """WhiteNoise serves Plotly.js from the plotly package (no CDN), gzipped on the wire, with
    validators so a reload costs a 304."""
    import gzip

    from django.templatetags.static import static

    def body(response) -> bytes:
        return b"".join(response.streaming_content) if response.streaming else response.content

    url = static("vendor/plotly.min.js")
    raw = login(client, manager).get(url)
    raw_body = body(raw)
    assert raw.status_code == 200 and b"plotly" in raw_body[:2000].lower()
    packed = client.get(url, HTTP_ACCEPT_ENCODING="gzip, deflate")
    packed_body = body(packed)
    assert packed["Content-Encoding"] == "gzip" and gzip.decompress(packed_body) == raw_body
    assert len(packed_body) < len(raw_body) / 3  # what crosses the network
    assert "max-age" in packed["Cache-Control"] and "Accept-Encoding" in packed["Vary"]
    assert client.get(url, HTTP_IF_NONE_MATCH=packed["ETag"]).status_code == 304

def test_it_shows_edge_node_status_from_the_heartbeat(client, manager, fleet):
    fleet.node.online = True
    fleet.node.status = {"state": "online", "versions": {"agent": "9.9.1"}, "buffer_depth": 17, "cpu_percent": 12.5, "memory_mb": 211}
    fleet.node.save()
    page = login(client, manager).get("/nodes/").content.decode()
    row = re.search(rf'<tr data-node="{fleet.node.node_id}".*?</tr>', page, re.DOTALL).group(0)
    assert "online" in row and "agent 9.9.1" in row and ">17<" in row and "12.5 %" in row and "211 MB" in row


def test_the_menu_marks_the_page_it_is_on_only(client, admin_user, fleet):
    """/nodes/ and Fleet security's /fleet-security/nodes/ share the URL name "nodes": each lights
    its own menu entry."""
    login(client, admin_user)
    current = re.compile(r'<a href="([^"]+)" class="current">')
    assert current.findall(client.get("/nodes/").content.decode()) == ["/nodes/"]
    assert current.findall(client.get("/fleet-security/nodes/").content.decode()) == ["/fleet-security/tokens/"]


def test_it_renders_the_fleet_in_a_fixed_number_of_queries(client, manager):
    def queries_for_fleet() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/").status_code == 200
        return len(ctx.captured_queries)

    login(client, manager)
    make_fleet(2, members=[manager])
    small = queries_for_fleet()
    for _ in range(3):
        fleet = make_fleet(10, members=[manager])
        open_alert(fleet)
    assert queries_for_fleet() == small  # more sites, assets and alerts, same queries
