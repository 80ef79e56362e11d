"""The dashboard in headless Chromium against the real stack: a facility manager sees the
fleet, readings published over MQTT reach the asset page live, a threshold crossing shows up
live as an alert that is then acknowledged; planners get the 403 page on rules; anonymous
sockets are refused."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import expect

from edge_node.agent import contract
from ingest.models import LatestValue
from tests.browser.conftest import log_in
from tests.factories import make_fleet
from tests.helpers import Publisher, wait_until
from twins.models import AlertRule

pytestmark = [pytest.mark.browser, pytest.mark.mqtt, pytest.mark.redis, pytest.mark.slow]

EVIL = "<script>alert(1)</script>"


class Readings:
    """Publishes readings of one fleet's node with increasing seq numbers."""

    def __init__(self, mqtt_url: str, fleet) -> None:
        self.pub = Publisher(mqtt_url)
        self.fleet = fleet
        self.seq = 0

    def send(self, asset, **values: float) -> float:
        self.seq += 1
        ts = time.time()
        batch = {"seq": self.seq, "readings": [{"asset": asset.key, "ts": ts, "values": values}]}
        self.pub.publish(contract.topic(self.fleet.node.node_id, "telemetry"), contract.encode(batch))
        return ts

    def close(self) -> None:
        self.pub.close()


@pytest.fixture
def readings(mqtt_url):
    made = []

    def make(fleet) -> Readings:
        made.append(Readings(mqtt_url, fleet))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_it_shows_the_fleet_to_a_facility_manager_with_names_as_text(page, live_ingest, manager):
    fleet = make_fleet(2, members=[manager])
    fleet.assets[1].name = EVIL
    fleet.assets[1].save()
    log_in(page, manager)
    expect(page.locator("h1")).to_have_text("Fleet")
    expect(page.locator(f'.site[data-site="{fleet.site.id}"] h2')).to_have_text(fleet.site.name)
    expect(page.locator(f'.tile[data-asset="{fleet.assets[0].id}"] .tile-name')).to_have_text(fleet.assets[0].name)
    expect(page.locator(f'.tile[data-asset="{fleet.assets[1].id}"] .tile-name')).to_have_text(EVIL)
    expect(page.locator("#live-badge")).to_have_text("live")
    assert page.dialogs == []  # the name was shown, never run


def test_it_extends_the_chart_and_the_latest_values_live(page, live_ingest, manager, readings):
    fleet = make_fleet(1, members=[manager])
    asset = fleet.assets[0]
    pub = readings(fleet)
    pub.send(asset, temperature_c=40.0, vib_rms=1.0)  # some history before the page opens
    # The pages run under the Content-Security-Policy (no inline script or style): Plotly, the
    # live socket and the page scripts must not trip it.
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    log_in(page, manager)
    expect(page.locator("#live-badge")).to_have_text("live")  # the fleet page's own socket is open
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(f"/assets/{asset.id}/?range=15m")
    expect(page.locator("#live-badge")).to_have_text("live")
    chart = page.locator('.chart[data-metric="temperature_c"]')
    expect(chart.locator(".main-svg").first).to_be_attached()
    ts = pub.send(asset, temperature_c=42.5, vib_rms=1.25)
    row = page.locator('#latest-values tr[data-metric="temperature_c"]')
    expect(row.locator(".value")).to_have_text("42.50", timeout=2000)
    expect(page.locator('#latest-values tr[data-metric="vib_rms"] .value')).to_have_text("1.25", timeout=2000)
    # The live point is drawn in the chart's 5-second bucket (15 min range), like the history.
    page.wait_for_function(
        "([sel, ts]) => parseFloat(document.querySelector(sel).dataset.lastTs || '0') === Math.floor(ts / 5) * 5",
        arg=['.chart[data-metric="temperature_c"]', ts], timeout=2000,
    )
    expect(page.locator("#twin-health")).to_have_text("not yet computed")
    assert len(sockets) == 1, sockets  # the chart and the twin panel share one live socket
    assert "script-src 'self'" in page.request.get(f"/assets/{asset.id}/").headers["content-security-policy"]
    assert violations == []


def test_it_shows_a_threshold_alert_live_and_acknowledges_it_with_a_comment(page, live_ingest, manager, readings):
    fleet = make_fleet(1, members=[manager])
    asset = fleet.assets[0]
    AlertRule.objects.create(metric=fleet.metrics["temperature_c"], warning_above=80.0, critical_above=90.0, hysteresis=2.0, min_duration_s=0.0)
    live_ingest.alerts.rules_loaded_at = float("-inf")  # apply the new rule on the next batch
    pub = readings(fleet)
    log_in(page, manager)
    page.goto("/alerts/")
    expect(page.locator("#live-badge")).to_have_text("live")
    expect(page.locator("#no-alerts")).to_be_visible()
    pub.send(asset, temperature_c=95.0)
    row = page.locator("#alerts-table tbody tr.alert-row").first
    expect(row.locator(".alert-title")).to_contain_text("above critical 90", timeout=3000)
    expect(row.locator(".sev-badge")).to_have_text("critical")
    expect(row.locator(".alert-asset a")).to_have_text(asset.name)
    row.locator("input[name=comment]").fill("Crew dispatched to check cooling")
    row.locator("button.ack-button").click()
    row = page.locator("#alerts-table tbody tr.alert-row").first
    expect(row.locator(".alert-state")).to_have_text("acknowledged")
    expect(row.locator(".ack-who")).to_have_text(manager.username)
    expect(row.locator(".ack-comment")).to_have_text("Crew dispatched to check cooling")
    expect(row.locator(".ack-form")).to_be_hidden()


def test_it_gives_a_planner_the_403_page_on_rule_editing(page, transactional_db, planner):
    make_fleet(1, members=[planner])
    log_in(page, planner)
    response = page.goto("/rules/")
    assert response.status == 403
    expect(page.locator("h1")).to_have_text("Not allowed")
    expect(page.get_by_role("link", name="Alert rules")).to_have_count(0)


def test_it_refuses_an_anonymous_websocket(page, transactional_db):
    page.goto("/login/")
    code = page.evaluate(
        """() => new Promise((resolve) => {
            const ws = new WebSocket(`ws://${location.host}/ws/live/`);
            ws.onclose = (ev) => resolve(ev.code);
        })"""
    )
    assert code == 4401


def test_it_leaves_no_gap_between_history_and_live_when_opened_mid_stream(page, live_ingest, manager, readings):
    """A reading stored after the page's history was rendered but before its socket subscribed
    reaches the page through the catch-up, not through the socket."""

    fleet = make_fleet(1, members=[manager])
    asset = fleet.assets[0]
    pub = readings(fleet)
    pub.send(asset, temperature_c=30.0)
    sockets: list[tuple] = []  # (server side, requests held back) per socket the page opens

    def hold_subscriptions(ws) -> None:
        # The socket opens, but the page's subscribe requests wait until the test lets them go.
        held: list[str] = []
        sockets.append((ws.connect_to_server(), held))
        ws.on_message(lambda message: held.append(message))

    page.route_web_socket("**/ws/live/", hold_subscriptions)
    log_in(page, manager)
    opened_before = len(sockets)  # the fleet page's, after logging in
    page.goto(f"/assets/{asset.id}/?range=15m")
    page.wait_for_function("() => document.querySelector('.chart[data-metric=\"temperature_c\"]').dataset.points !== undefined")
    ts = pub.send(asset, temperature_c=33.25)
    wait_until(lambda: LatestValue.objects.filter(asset=asset, value=33.25).exists(), 5, what="the reading stored")
    for _ in range(100):  # Playwright runs the route's callbacks only inside its own calls
        if len(sockets) > opened_before and sockets[-1][1]:
            break
        page.wait_for_timeout(50)
    page_sockets = sockets[opened_before:]  # the asset page's (its chart module and its twin panel)
    subscribe = json.dumps({"action": "subscribe", "asset": asset.id}, separators=(",", ":"))
    assert page_sockets and all(held == [subscribe] for _server, held in page_sockets if held)
    page.wait_for_timeout(600)  # the ingest's live update for it goes out now, to nobody (one throttle interval)
    expect(page.locator('#latest-values tr[data-metric="temperature_c"] .value')).not_to_have_text("33.25")
    for server, held in page_sockets:
        for message in held:
            server.send(message)
    # generous timeouts: this checks that the catch-up happens at all, not how fast (a loaded CI box)
    expect(page.locator('#latest-values tr[data-metric="temperature_c"] .value')).to_have_text("33.25", timeout=10000)
    page.wait_for_function(
        "([sel, ts]) => parseFloat(document.querySelector(sel).dataset.lastTs || '0') === Math.floor(ts / 5) * 5",
        arg=['.chart[data-metric="temperature_c"]', ts], timeout=10000,
    )


def test_it_folds_live_readings_into_the_charts_buckets(page, live_ingest, manager, readings):
    """The live tail is drawn at the history's resolution (1 h range: 15 s buckets), not as raw
    one-second points on top of the averages."""

    fleet = make_fleet(1, members=[manager])
    asset = fleet.assets[0]
    pub = readings(fleet)
    pub.send(asset, temperature_c=20.0)
    log_in(page, manager)
    page.goto(f"/assets/{asset.id}/?range=1h")
    expect(page.locator("#live-badge")).to_have_text("live")
    chart = '.chart[data-metric="temperature_c"]'
    page.wait_for_function("(sel) => document.querySelector(sel).dataset.points !== undefined", arg=chart)
    time.sleep(15 - time.time() % 15 + 0.2)  # a fresh 15 s bucket: the three readings below share it, the history does not
    sent = []
    for value in (60.0, 62.0, 64.0):
        sent.append(pub.send(asset, temperature_c=value))
        time.sleep(1.0)  # one live update per asset per throttle interval
    bucket = (sent[0] // 15) * 15
    assert (sent[-1] // 15) * 15 == bucket
    page.wait_for_function("([sel, b]) => parseFloat(document.querySelector(sel).dataset.lastTs) === b && parseFloat(document.querySelector(sel).dataset.lastY) >= 61.9",
                           arg=[chart, bucket], timeout=5000)
    points_before = int(page.get_attribute(chart, "data-points"))
    last_y = float(page.get_attribute(chart, "data-last-y"))
    assert 61.9 <= last_y <= 62.1  # the mean of the bucket's three readings, not the last one (64)
    assert points_before <= 3  # history (one bucket) + this bucket, not a point per reading
