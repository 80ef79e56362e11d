"""The combined-rule pages through the Django test client: an admin creates, edits and deletes a
rule with its conditions; each mistake is a field error and stores nothing; other roles are
refused. (tests/browser/test_combined_rules_page.py does it in Chromium.)"""

from __future__ import annotations

import pytest

from tests.factories import make_asset_type, make_fleet
from twins.models import CombinedRule, RuleCondition

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(manager, planner):
    return make_fleet(1, members=[manager, planner])


def post_data(fleet, conditions, total=None, initial=0, **rule):
    data = {"name": "Winding hot or vibration high", "asset_type": fleet.asset_type.id, "combine": "or", "severity": "warning",
            "min_duration_s": "10", "escalate_after_s": "", "enabled": "on", **rule}
    data.update({"conditions-TOTAL_FORMS": str(total or len(conditions)), "conditions-INITIAL_FORMS": str(initial),
                 "conditions-MIN_NUM_FORMS": "0", "conditions-MAX_NUM_FORMS": "8"})
    for i, c in enumerate(conditions):
        data.update({f"conditions-{i}-{k}": v for k, v in c.items()})
    return data


def cond(metric, threshold, measure="value", op="above", hysteresis="0"):
    return {"metric": str(metric.id) if metric else "", "measure": measure, "op": op, "threshold": str(threshold), "hysteresis": hysteresis}


def test_an_admin_creates_edits_and_deletes_a_combined_rule(client, admin_user, fleet):
    client.force_login(admin_user)
    temp, vib = fleet.metrics["temperature_c"], fleet.metrics["vib_rms"]
    assert b'id="combined-rule-form"' in client.get("/rules/combined/new/").content
    blank = {"metric": "", "measure": "value", "op": "above", "threshold": "", "hysteresis": "0"}  # an untouched row: skipped
    r = client.post("/rules/combined/new/", post_data(fleet, [cond(temp, 120, hysteresis="5"), cond(vib, 2, measure="rate"), blank], escalate_after_s="300"))
    assert r.status_code == 302 and r["Location"] == "/rules/"
    rule = CombinedRule.objects.get()
    assert (rule.name, rule.combine, rule.severity, rule.min_duration_s, rule.escalate_after_s) == ("Winding hot or vibration high", "or", "warning", 10.0, 300.0)
    got = sorted((c.metric.key, c.measure, c.op, c.threshold, c.hysteresis) for c in rule.conditions.all())
    assert got == [("temperature_c", "value", "above", 120.0, 5.0), ("vib_rms", "rate", "above", 2.0, 0.0)]
    listing = client.get("/rules/").content.decode()
    assert "Winding hot or vibration high" in listing and "<strong>OR</strong>" in listing and "rate/min" in listing
    # edit: AND, drop the rate condition, change a threshold
    kept, dropped = rule.conditions.get(metric=temp), rule.conditions.get(metric=vib)
    edited = post_data(fleet, [{**cond(temp, 125), "id": str(kept.id)}, {**cond(vib, 2, measure="rate"), "id": str(dropped.id), "DELETE": "on"}],
                       initial=2, combine="and", name="Winding hot")
    assert client.post(f"/rules/combined/{rule.id}/", edited).status_code == 302
    rule.refresh_from_db()
    assert (rule.name, rule.combine) == ("Winding hot", "and")
    assert [(c.metric_id, c.threshold) for c in rule.conditions.all()] == [(temp.id, 125.0)]
    assert client.post(f"/rules/combined/{rule.id}/delete/").status_code == 302
    assert not CombinedRule.objects.exists() and not RuleCondition.objects.exists()


@pytest.mark.parametrize(("change", "where", "words"), [
    ({"name": ""}, "name", "Give the rule a name"),
    ({"min_duration_s": "-1"}, "min_duration_s", "cannot be negative"),
    ({"severity": "critical", "escalate_after_s": "60"}, "escalate_after_s", "cannot escalate further"),
    ({"conditions": "none"}, "conditions", "at least one condition"),
    ({"conditions": "threshold"}, "conditions", "Give a threshold"),
    ({"conditions": "hysteresis"}, "conditions", "hysteresis cannot be negative"),
    ({"conditions": "other type"}, "conditions", "choose one of the rule"),
])
def test_each_mistake_is_a_field_error_and_nothing_is_stored(client, admin_user, fleet, change, where, words):
    client.force_login(admin_user)
    temp = fleet.metrics["temperature_c"]
    conditions = [cond(temp, 120)]
    kind = change.pop("conditions", None)
    if kind == "none":
        conditions = [cond(None, "")]
    elif kind == "threshold":
        conditions = [cond(temp, "")]
    elif kind == "hysteresis":
        conditions = [cond(temp, 120, hysteresis="-2")]
    elif kind == "other type":
        conditions = [cond(make_asset_type().metrics.first(), 120)]
    r = client.post("/rules/combined/new/", post_data(fleet, conditions, **change))
    assert r.status_code == 200
    page = r.content.decode()
    assert words in page.replace("&#x27;", "'")
    if where == "conditions":
        assert 'class="condition has-error"' in page or "Give at least one condition" in page
    else:
        assert f'class="field has-error" data-field="{where}"' in page
    assert not CombinedRule.objects.exists() and not RuleCondition.objects.exists()


def test_other_roles_may_not_see_or_change_combined_rules(client, manager, planner, admin_user, fleet):
    from twins.combined_rule_edits import save_combined_rule

    rule = save_combined_rule(CombinedRule(asset_type=fleet.asset_type, name="Hot"), [RuleCondition(metric=fleet.metrics["temperature_c"], threshold=100)])
    for user in (manager, planner):
        client.force_login(user)
        for url in ("/rules/combined/new/", f"/rules/combined/{rule.id}/"):
            response = client.get(url)
            assert response.status_code == 403 and "admin" in response.content.decode()
        assert client.post("/rules/combined/new/", post_data(fleet, [cond(fleet.metrics["vib_rms"], 5)])).status_code == 403
        assert client.post(f"/rules/combined/{rule.id}/", post_data(fleet, [cond(fleet.metrics["vib_rms"], 5)], name="Changed")).status_code == 403
        assert client.post(f"/rules/combined/{rule.id}/delete/").status_code == 403
    assert list(CombinedRule.objects.values_list("name", flat=True)) == ["Hot"] and RuleCondition.objects.count() == 1
