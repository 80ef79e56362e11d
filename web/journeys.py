"""The three roles' journeys through the running demo, in a real browser (Playwright).

One definition for the acceptance tests (tests/acceptance: they assert on what each journey
returns) and ``manage.py screenshots`` (it saves the pictures each journey takes to
docs/screenshots/). Each journey does what the person would: logs in, looks, clicks, types;
the admin also runs the gateway's enrollment command and the model trainer, as an admin would
in a shell. The journeys only observe and return what they saw; judging it is the caller's.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

Shot = Callable[[Any, str], None]  # (page, name) -> saves a picture, or does nothing
DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}
CHARTS_DRAWN = """() => [...document.querySelectorAll(".chart, .chart-box, #twin-chart")]
  .filter((el) => !el.hidden && el.offsetParent !== null).every((el) => el.querySelector(".main-svg"))"""


def no_shot(page: Any, name: str) -> None:
    """The default: the journey takes no pictures."""


def login(browser: Any, base: str, username: str, password: str, viewport: dict | None = None) -> Any:
    page = browser.new_context(viewport=viewport or DESKTOP).new_page()
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def _page_width(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


# --- facility manager ----------------------------------------------------------------------------


@dataclass
class ManagerSaw:
    tiles: list[dict[str, str]] = field(default_factory=list)  # name, state, twin text
    asset: dict[str, str] = field(default_factory=dict)  # the worst asset's page: name, health, rul, rate
    acknowledged: dict[str, str] = field(default_factory=dict)  # title, state, who, comment
    phone_widths: dict[str, int] = field(default_factory=dict)  # page -> scrollWidth at 390 px


def manager_journey(browser: Any, base: str, shot: Shot = no_shot) -> ManagerSaw:
    saw = ManagerSaw()
    page = login(browser, base, "manager", "manager-demo")
    page.wait_for_selector("#live-badge[data-state=live]")
    page.wait_for_function("document.querySelectorAll('.tile-twin:not(:empty)').length >= 25")
    for tile in page.locator(".tile").all():
        saw.tiles.append({
            "name": tile.locator(".tile-name").inner_text(), "state": tile.locator(".tile-state").inner_text(),
            "twin": tile.locator(".tile-twin").inner_text(), "href": tile.get_attribute("href"),
        })
    shot(page, "fleet")
    worst = next((t for t in saw.tiles if t["state"] == "Critical"), None) or next(t for t in saw.tiles if t["state"] == "Warning")
    page.goto(f"{base}{worst['href']}")
    page.wait_for_function(CHARTS_DRAWN)
    page.wait_for_selector("#twin-health[data-state=computed]")
    saw.asset = {"name": page.inner_text("#asset-name"), "health": page.inner_text("#twin-health"), "rul": page.inner_text("#twin-rul"),
                 "rate": page.inner_text("#twin-rate")}
    shot(page, "asset")
    page.goto(f"{base}/alerts/?state=open")
    row = page.locator("tr.alert-row.state-open").first
    row.wait_for()
    title = row.locator(".alert-title").inner_text()
    row.locator("input[name=comment]").fill("Crew on the way; bearing ordered")
    row.locator("button.ack-button").click()
    page.wait_for_load_state()
    page.goto(f"{base}/alerts/?state=acknowledged")
    acked = page.locator("tr.alert-row", has_text=title).first
    acked.wait_for()
    saw.acknowledged = {"title": title, "state": acked.locator(".alert-state").inner_text().lower(), "who": acked.locator(".ack-who").inner_text(),
                        "comment": acked.locator(".ack-comment").inner_text()}
    page.goto(f"{base}/alerts/")
    shot(page, "alerts")
    page.context.close()
    phone = login(browser, base, "manager", "manager-demo", PHONE)
    for name, path in (("fleet", "/"), ("alerts", "/alerts/"), ("asset", worst["href"])):
        phone.goto(f"{base}{path}")
        if name == "asset":
            phone.wait_for_function(CHARTS_DRAWN)
        saw.phone_widths[name] = _page_width(phone)
        if name == "alerts":
            shot(phone, "alerts-phone")
    phone.context.close()
    return saw


# --- maintenance planner -------------------------------------------------------------------------


@dataclass
class PlannerSaw:
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # policy -> fleet figures (scenario and baseline)
    phone_width: int = 0


def _run_scenario(page: Any, base: str, name: str, policy: str, setting: tuple[str, str] | None) -> dict[str, Any]:
    page.goto(f"{base}/scenarios/new/")
    page.fill("input[name=name]", name)
    page.select_option("select[name=site]", label="North Plant")
    page.select_option("select[name=policy]", value=policy)
    if setting:
        page.fill(f"input[name={setting[0]}]", setting[1])
    page.fill("input[name=replications]", "200")
    page.click("#run-scenario")
    # The run's socket reports progress; when it is done the page reloads with the results.
    page.wait_for_selector("#risk-chart .main-svg", timeout=240_000)
    page.wait_for_function(CHARTS_DRAWN, timeout=30_000)
    data = json.loads(page.inner_text("#run-data"))
    results = data["results"]
    return {"scenario": results["fleet"]["scenario"], "baseline": results["fleet"].get("baseline"), "url": page.url}


def planner_journey(browser: Any, base: str, shot: Shot = no_shot) -> PlannerSaw:
    saw = PlannerSaw()
    page = login(browser, base, "planner", "planner-demo")
    plans = (
        ("rul_based", "North Plant: act on the twins' RUL", ("lead_time_hours", "500")),
        ("time_based", "North Plant: replace every 5,000 h", ("interval_hours", "5000")),
    )
    for policy, name, setting in plans:
        saw.runs[policy] = _run_scenario(page, base, name, policy, setting)
        if policy == "rul_based":
            shot(page, "scenario")
    page.context.close()
    phone = login(browser, base, "planner", "planner-demo", PHONE)
    phone.goto(saw.runs["rul_based"]["url"])
    phone.wait_for_function(CHARTS_DRAWN)
    saw.phone_width = _page_width(phone)
    shot(phone, "scenario-phone")
    phone.context.close()
    return saw


# --- admin ---------------------------------------------------------------------------------------


@dataclass
class AdminSaw:
    enrolled: str = ""  # the enrollment command's output
    node_row: str = ""
    model_page: str = ""
    waiting_note: str = ""  # what the proposer reads
    final_state: str = ""
    node_states: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)  # what the North Plant nodes report afterwards
    bad_state: str = ""
    bad_reason: str = ""
    bad_node_states: list[str] = field(default_factory=list)
    rollout_buttons: dict[str, list[str]] = field(default_factory=dict)  # state -> buttons shown


def _train_model(folder: Path, version: str, normal_wear: float, seed: int) -> Path:
    """What the admin runs in a shell: the anomaly model trainer."""
    subprocess.run([sys.executable, "-m", "edge_node.agent.train_anomaly", "--asset-type", "induction_motor", "--out", str(folder),
                    "--version", version, "--normal-wear", str(normal_wear), "--seed", str(seed), "--windows", "1200"],
                   check=True, cwd=settings.BASE_DIR, capture_output=True, timeout=300)
    return folder / "induction_motor-anomaly" / version


def _register(page: Any, base: str, folder: Path) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    page.goto(f"{base}/model-registry/")
    page.set_input_files("input[name=file]", str(folder / "model.onnx"))
    page.fill("input[name=name]", meta["name"])
    page.fill("input[name=version]", meta["version"])
    page.select_option("select[name=kind]", value="anomaly")
    page.fill("textarea[name=metadata]", json.dumps(meta))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#propose-form")


def _propose(page: Any) -> str:
    page.select_option("#propose-form select[name=site]", label="North Plant")
    page.fill("#propose-form input[name=canary_share]", "0.5")
    page.click("#propose-form button[type=submit]")
    page.wait_for_selector("#rollout-state[data-state=proposed]")
    return page.url


def _buttons(page: Any) -> list[str]:
    return [b.inner_text() for b in page.locator("#rollout-actions button").all()]


def _approve_and_follow(approver: Any, url: str, saw: AdminSaw, timeout_s: float = 120.0) -> str:
    approver.goto(url)
    saw.rollout_buttons["proposed"] = _buttons(approver)
    approver.click("#approve")
    deadline = time.monotonic() + timeout_s
    state = ""
    while time.monotonic() < deadline:
        state = approver.get_attribute("#rollout-state", "data-state") or ""
        if state in ("done", "cancelled") or (state == "rolled_back" and not approver.locator("#rollout-nodes tr[data-state=switched]").count()):
            break
        approver.wait_for_timeout(500)
    approver.wait_for_timeout(2500)  # one more poll: the buttons of the final state
    saw.rollout_buttons[state] = _buttons(approver)
    return state


def admin_journey(browser: Any, base: str, shot: Shot = no_shot) -> AdminSaw:
    saw = AdminSaw()
    page = login(browser, base, "admin", "admin-demo")
    # Enroll a new gateway at South Campus: token in the browser, the command on the gateway.
    page.goto(f"{base}/fleet-security/tokens/")
    page.select_option("select[name=site]", label="South Campus")
    page.fill("input[name=node_id]", "south-gw-2")
    page.click("text=Create token")
    command = page.inner_text("#enroll-command")
    token = re.search(r"--token (\S+)", command).group(1)
    shot(page, "enroll")
    with tempfile.TemporaryDirectory(prefix="aiot-gateway-") as gateway:
        done = subprocess.run([sys.executable, "-m", "edge_node.agent", "enroll", "--url", base, "--token", token, "--config", f"{gateway}/node.toml"],
                              cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60)
        saw.enrolled = (done.stdout + done.stderr).strip()
    page.goto(f"{base}/fleet-security/nodes/")
    saw.node_row = page.locator("tr[data-node='south-gw-2']").inner_text()
    # A retrained motor model: registered, proposed by this admin, approved by the second one.
    with tempfile.TemporaryDirectory(prefix="aiot-models-") as models:
        good = _train_model(Path(models), "2", normal_wear=0.6, seed=7)
        bad = _train_model(Path(models), "3", normal_wear=0.0, seed=8)  # trained on new machines only
        _register(page, base, good)
        saw.model_page = page.inner_text("main")
        url = _propose(page)
        saw.waiting_note = page.inner_text("#rollout-actions")
        approver = login(browser, base, "admin2", "admin2-demo")
        saw.final_state = _approve_and_follow(approver, url, saw)
        saw.node_states = [t.inner_text() for t in approver.locator("#rollout-nodes tbody tr td:nth-child(3)").all()]
        shot(approver, "rollout")
        approver.goto(f"{base}/nodes/")
        approver.wait_for_timeout(12_000)  # the nodes' next heartbeat carries their model versions
        approver.reload()
        saw.versions = [approver.locator(f"tr[data-node='{n}']").inner_text() for n in ("north-gw-1", "north-gw-2")]
        shot(approver, "nodes")
        # The model trained on new machines only flags the plant's worn motors: its canary fails the
        # agreement gate and the rollout goes back, saying why.
        _register(page, base, bad)
        bad_url = _propose(page)
        saw.bad_state = _approve_and_follow(approver, bad_url, saw)
        saw.bad_reason = approver.inner_text("#rollout-reason")
        saw.bad_node_states = [t.inner_text() for t in approver.locator("#rollout-nodes tbody tr td:nth-child(3)").all()]
        shot(approver, "rollout-rolled-back")
    approver.context.close()
    page.context.close()
    return saw
