"""In headless Chromium against daphne: a facility manager creates an API token (the key shown
once) and another system uses it to read telemetry as a CSV streamed by the ASGI server; the
manager subscribes a webhook, and a URL at the platform itself is refused with the field named."""

from __future__ import annotations

import csv
import io
import urllib.request
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from ingest.timeseries.writes import write_rows
from notify.models import Subscription
from tests.browser.conftest import log_in
from tests.factories import make_fleet

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.slow]


def test_a_manager_makes_a_token_another_system_exports_with_it_and_a_webhook_is_checked(page, manager, web_server):
    fleet = make_fleet(1, members=[manager])
    asset, metric = fleet.assets[0], fleet.metrics["vib_rms"]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    write_rows([(start + timedelta(seconds=i), asset.id, metric.id, i / 10) for i in range(3000)])
    log_in(page, manager)
    page.goto("/api/tokens/")
    page.fill("input[name=name]", "CMMS")
    page.click("text=Create token")
    key = page.locator("#new-key").inner_text()
    assert key.startswith("aiot_")
    page.reload()
    expect(page.locator("#new-key")).to_have_count(0)  # shown once
    expect(page.locator("table.tokens")).to_contain_text("CMMS")

    query = urlencode({"asset": asset.id, "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()})
    request = urllib.request.Request(f"{web_server}/api/v1/exports/telemetry.csv?{query}", headers={"Authorization": f"Token {key}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers.get("Transfer-Encoding") == "chunked" or response.headers.get("Content-Length") is None
        rows = list(csv.reader(io.StringIO(response.read().decode())))
    assert len(rows) == 3001 and rows[0] == ["time", "asset", "metric", "value"] and float(rows[-1][3]) == pytest.approx(299.9)

    page.goto("/notifications/new/")
    page.fill("input[name=name]", "CMMS work orders")
    page.select_option("select[name=channel]", "webhook")
    page.fill("input[name=target]", f"{web_server}/api/v1/alerts/")
    page.click("text=Save")
    expect(page.locator("#subscription-form")).to_contain_text("points at the platform itself")
    page.fill("input[name=target]", "https://cmms.example.org/hooks/aiot")
    page.click("text=Save")
    page.wait_for_url("**/notifications/")
    expect(page.locator("body")).to_contain_text("https://cmms.example.org/hooks/aiot")
    assert Subscription.objects.get(user=manager).channel == "webhook"
