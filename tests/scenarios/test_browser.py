"""In headless Chromium against the embedded default (`manage.py run_embedded`: in-process
Celery worker on the memory transport, in-memory channel layer): a planner creates a scenario,
watches the progress bar move over the run's socket, and sees the comparison chart, the
recommended dates and the assumptions; names stay text."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.helpers import ROOT, database_url_for_subprocess, free_port, wait_until
from tests.scenarios.factories import make_site_with_twins
from twins.scenarios.models import ScenarioRun

pytestmark = [pytest.mark.browser, pytest.mark.slow]
EVIL_NAME = "<img src=x onerror=alert(1)> summer"
log = logging.getLogger(__name__)


@pytest.fixture
def embedded_server(transactional_db, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MQTT_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")}
    env.update(DATABASE_URL=database_url_for_subprocess(), AIOT_VAR_DIR=str(tmp_path), PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING")
    port = free_port()
    log_path = Path(tmp_path) / "embedded.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "manage.py", "run_embedded", "--no-fleet", "--port", str(port), "--mqtt-port", str(free_port())],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "Press Ctrl-C" in log_path.read_text() or proc.poll() is not None, 60, 0.2, what="the embedded stack")
        assert proc.poll() is None, log_path.read_text()[-3000:]
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_it_lets_a_planner_run_a_scenario_and_compare_it_with_the_baseline(chromium, embedded_server, planner):  # noqa: F811
    site, assets = make_site_with_twins(6, members=[planner], name="North <b>Plant</b>")
    context = chromium.new_context(base_url=embedded_server, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        log_in(page, planner)
        page.click("nav >> text=Scenarios")
        page.click("#new-scenario")
        page.fill("input[name=name]", EVIL_NAME)
        page.select_option("select[name=site]", str(site.id))
        page.fill("input[name=load_factor]", "1.3")
        page.select_option("select[name=policy]", "condition_based")
        page.fill("input[name=health_threshold]", "0.25")
        page.fill("input[name=replications]", "99999")
        page.click("#run-scenario")
        expect(page.locator("[data-field=replications] .errorlist")).to_contain_text("Must be between 1 and 10000")
        page.fill("input[name=replications]", "4000")
        frames: list[dict] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(json.loads(payload))))
        page.click("#run-scenario")
        page.wait_for_url("**/scenarios/runs/*/")
        run = ScenarioRun.objects.get()
        expect(page.locator("#scenario-name")).to_have_text(EVIL_NAME)

        seen: list[tuple[str, str]] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if page.locator("#comparison-chart .main-svg").count():
                break
            try:
                bar = page.locator("#progress-bar")
                seen.append((bar.get_attribute("value") or "", page.locator("#run-state").text_content() or ""))
            except PlaywrightError as exc:  # the page reloads when the run ends
                log.info("progress bar not readable during the reload: %s", exc)
            time.sleep(0.05)
        expect(page.locator("#comparison-chart .main-svg").first).to_be_visible()
        values = [int(float(v)) for v, _state in seen if v]
        assert any(0 < v < run.total for v in values), f"the bar never showed progress in between: {seen[:5]}...{seen[-5:]}"
        assert values == sorted(values)
        assert "running" in {state for _v, state in seen}
        # What the socket delivered: the bar's source, never backwards, ending with "done".
        progress = [(f["done"], f["checked"]) for f in frames]
        assert progress == sorted(progress) and frames[-1]["state"] == "done" and progress[-1] == (run.total, run.check_total)
        assert len(frames) >= 3

        run.refresh_from_db()
        assert run.state == "done"
        assert run.total == 2 * 4000  # the what-if's and the baseline's, as the label says
        expect(page.locator("#progress-text")).to_have_text(f"{run.total} / {run.total} replications (what-if and baseline)")
        expect(page.locator("#check-text")).to_have_text(f"recommendations checked on {run.check_total} / {run.check_total}")
        assert page.locator("#progress-bar").get_attribute("max") == str(run.total + run.check_total)
        # The comparison chart and table: the what-if's legend entry is the name, as text.
        expect(page.locator("#comparison-chart .legendtext").first).to_have_text(EVIL_NAME)
        expect(page.locator("#comparison-table tbody tr")).to_have_count(len(run.comparison["scenarios"][0]["fleet"]))
        expect(page.locator("#rul-chart .main-svg").first).to_be_visible()
        expect(page.locator("#risk-chart .main-svg").first).to_be_visible()
        expect(page.locator("#asset-rul-chart .main-svg").first).to_be_visible()
        dated = [a for a in page.context.request.get(f"{embedded_server}/scenarios/runs/{run.id}/csv/").text().splitlines()[1:] if a]
        assert len(dated) == 2 * (len(assets) + 1)
        expect(page.locator("#asset-table tbody tr")).to_have_count(len(assets))
        recommended = page.locator("#asset-table time")
        if recommended.count():
            assert recommended.first.get_attribute("datetime") >= run.created_at.date().isoformat()
        expect(page.locator("#assumptions")).to_contain_text("twin RUL median")
        assert dialogs == [], "a name was run as HTML"
    finally:
        context.close()
