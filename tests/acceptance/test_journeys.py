"""Each role's journey through the running demo after its warm-up, in real Chromium: what a
facility manager, a maintenance planner and an admin meet in their first minutes must be true,
useful and consistent (web/journeys.py walks them; these tests judge what they saw)."""

from __future__ import annotations

import re

import pytest

from web.journeys import admin_journey, manager_journey, planner_journey

# The first test also waits for the demo to start (models, history, warm-up): minutes on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(900)]
PHONE_WIDTH = 390
HOURS = r"([\d,]+(?:\.\d)?) hours"


def number(text: str) -> float:
    return float(text.replace(",", ""))


def test_the_facility_manager_sees_a_believable_fleet_and_acknowledges_an_alert(demo, browser, shots):
    saw = manager_journey(browser, demo["base"], shots)

    assert len(saw.tiles) == 30
    healths, ruls, beyond = [], [], 0
    for tile in saw.tiles:
        m = re.match(rf"Health (\d+) % · RUL (> )?{HOURS}", tile["twin"])
        assert m, f"{tile['name']}: {tile['twin']!r}"
        healths.append(int(m.group(1)))
        if m.group(2):
            beyond += 1
            assert number(m.group(3)) in (7000.0, 10000.0)  # the model's horizon, said as such
        else:
            ruls.append(number(m.group(3)))
    # Most machines healthy, a few near the end, lives in operating hours of a real plant.
    assert sum(h >= 50 for h in healths) >= 20 and beyond >= 10
    assert min(ruls) < 1000 and all(1 <= r <= 10_000 for r in ruls)
    states = [t["state"] for t in saw.tiles]
    assert 1 <= states.count("Critical") + states.count("Warning") <= 8 and states.count("OK") >= 22
    # The worst machine's page: health, RUL and pace agree (health lost per hour = health / RUL).
    health = float(saw.asset["health"].rstrip(" %")) / 100
    rul = number(re.match(HOURS, saw.asset["rul"]).group(1))
    if saw.asset["rate"] != "–":
        rate = float(re.match(r"([\d.e-]+) % of health per operating hour", saw.asset["rate"]).group(1)) / 100
        assert rate > 0 and (health == 0 or abs(rate - health / rul) / rate < 0.2)
    assert rul < 2000 and health < 0.3
    assert saw.acknowledged == {"title": saw.acknowledged["title"], "state": "acknowledged", "who": "manager", "comment": "Crew on the way; bearing ordered"}
    assert saw.phone_widths == dict.fromkeys(("fleet", "alerts", "asset"), PHONE_WIDTH)


def test_the_planner_gets_plausible_policy_dependent_answers(demo, browser, shots):
    saw = planner_journey(browser, demo["base"], shots)

    baseline = saw.runs["rul_based"]["baseline"]
    # North Plant (18 machines) run to failure for a year: a few failures, availability over 99 %.
    assert 0.5 <= baseline["expected_failures"] <= 0.8 * 18 and baseline["expected_preventive"] == 0
    assert baseline["availability"]["mean"] > 0.99
    for policy, run in saw.runs.items():
        assert run["scenario"]["expected_preventive"] > 0, policy
        assert run["scenario"]["expected_failures"] < 0.7 * run["baseline"]["expected_failures"], policy
    assert saw.runs["rul_based"]["scenario"]["expected_failures"] < saw.runs["time_based"]["scenario"]["expected_failures"]
    assert saw.phone_width == PHONE_WIDTH


def test_the_admin_enrolls_a_node_and_rolls_a_model_out_with_a_second_admin(demo, browser, shots):
    saw = admin_journey(browser, demo["base"], shots)

    assert "enrolled as node south-gw-2" in saw.enrolled and "active" in saw.node_row
    assert "Propose a rollout" in saw.model_page
    assert "Another admin must approve this rollout." in saw.waiting_note
    assert saw.rollout_buttons["proposed"] == ["Approve", "Cancel"]
    # The simulated gateways took it through the agent's deploy path: every node switched.
    assert saw.final_state == "done" and saw.node_states == ["switched", "switched"]
    assert saw.rollout_buttons["done"] == ["Roll back"]
    assert all("induction_motor-anomaly@2" in v or "induction_motor-anomaly 2" in v for v in saw.versions), saw.versions
    # A model trained on new machines only: the canary's shadow run disagrees, the rollout goes back, and says why.
    assert saw.bad_state == "rolled_back" and "agreement" in saw.bad_reason
    assert sorted(saw.bad_node_states) in (["not sent", "switched"], ["failed", "not sent"], ["not sent", "rolled back"])
    assert saw.rollout_buttons["rolled_back"] == []
