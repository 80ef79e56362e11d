"""In headless Chromium against daphne, under the production Content-Security-Policy: an admin
creates a combined rule (winding temperature high OR vibration rising fast) on its page, is
told which field is missing, and sees the rule listed; a facility manager is refused."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.factories import make_fleet
from twins.models import CombinedRule

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_an_admin_creates_a_combined_rule_on_its_page_and_sees_it_listed(page, admin_user, manager):
    fleet = make_fleet(1, members=[manager])
    temp, vib = fleet.metrics["temperature_c"], fleet.metrics["vib_rms"]
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    log_in(page, admin_user)
    page.goto("/rules/")
    page.click("text=New combined rule")
    page.wait_for_url("**/rules/combined/new/")
    page.fill("input[name=name]", "Winding hot or vibration rising")
    page.select_option("select[name=asset_type]", str(fleet.asset_type.id))
    page.select_option("select[name=combine]", "or")
    page.fill("input[name=min_duration_s]", "5")
    page.fill("input[name=escalate_after_s]", "600")
    page.select_option("select[name=conditions-0-metric]", str(temp.id))
    page.fill("input[name=conditions-0-threshold]", "120")
    page.fill("input[name=conditions-0-hysteresis]", "5")
    page.select_option("select[name=conditions-1-metric]", str(vib.id))
    page.select_option("select[name=conditions-1-measure]", "rate")
    page.click("text=Save combined rule")  # the rate's threshold left out
    row = page.locator('#conditions tr[data-row="1"]')
    expect(row).to_have_class("condition has-error")
    expect(row).to_contain_text("Give a threshold (per minute for a rate of change).")
    assert not CombinedRule.objects.exists()
    expect(page.locator("input[name=name]")).to_have_value("Winding hot or vibration rising")  # what was typed is kept
    page.fill("input[name=conditions-1-threshold]", "3")
    page.click("text=Save combined rule")
    page.wait_for_url("**/rules/")
    listed = page.locator("#combined-rule-list tbody tr").filter(has_text="Winding hot or vibration rising")
    expect(listed).to_contain_text(fleet.asset_type.name)
    expect(listed).to_contain_text("temperature_c above 120.0 (±5.0) OR vib_rms rate/min above 3.0")
    expect(listed).to_contain_text("600.0 s")
    rule = CombinedRule.objects.get()
    assert sorted((c.metric_id, c.measure, c.threshold) for c in rule.conditions.all()) == sorted([(temp.id, "value", 120.0), (vib.id, "rate", 3.0)])
    assert violations == []

    other = page.context.browser.new_context(base_url=page.url.split("/rules/")[0])
    manager_page = other.new_page()
    try:
        log_in(manager_page, manager)
        response = manager_page.goto(f"/rules/combined/{rule.id}/")
        assert response.status == 403
        expect(manager_page.locator("body")).to_contain_text("admin")
    finally:
        other.close()
