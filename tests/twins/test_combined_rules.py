"""Alert rules people ask for: AND/OR over metrics, rate of change, time-based escalation and
de-escalation, with hysteresis and minimum duration kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from twins.composite import Combined, CombinedState, Condition
from twins.rules import CRITICAL, WARNING, ConditionState, Thresholds

TEMP, VIB = 1, 2


def feed(state: CombinedState, rule: Combined, readings):
    """readings: (t, metric, value); the transitions as (t, kind, level)."""
    out = []
    for t, metric, value in readings:
        change = state.observe(float(t), metric, value, rule)
        if change is not None:
            out.append((t, change.kind, change.level))
    return out


def test_or_opens_on_either_condition_and_clears_when_both_are_back():
    rule = Combined(1, "or", WARNING, (Condition(TEMP, "above", 120.0, hysteresis=5.0), Condition(VIB, "above", 7.1, hysteresis=0.5)), min_duration_s=10)
    s = CombinedState()
    got = feed(s, rule, [(0, TEMP, 100), (0, VIB, 8.0), (5, VIB, 8.2), (10, VIB, 8.1), (15, VIB, 6.9), (20, VIB, 6.5), (25, VIB, 6.4), (30, VIB, 6.0)])
    assert got == [(10, "open", WARNING), (30, "clear", 0)]
    # hysteresis: back to 6.8 (inside the threshold by less than 0.5) still counts as high
    s = CombinedState()
    got = feed(s, rule, [(0, VIB, 8.0), (10, VIB, 8.0), (15, VIB, 6.8), (20, VIB, 6.8), (26, VIB, 6.8), (30, VIB, 6.8)])
    assert got == [(10, "open", WARNING)]


def test_and_needs_both_conditions_held_for_the_minimum_duration():
    rule = Combined(2, "and", CRITICAL, (Condition(TEMP, "above", 120.0), Condition(VIB, "above", 7.1)), min_duration_s=10)
    s = CombinedState()
    got = feed(s, rule, [(0, TEMP, 130), (0, VIB, 5), (5, VIB, 9), (10, VIB, 9), (12, TEMP, 110), (14, TEMP, 131), (20, VIB, 9), (25, VIB, 9)])
    assert got == [(25, "open", CRITICAL)]  # the AND broke at 12 s: the duration starts again at 14 s


def test_rate_of_change_per_minute():
    rule = Combined(3, "or", WARNING, (Condition(TEMP, "above", 5.0, measure="rate"),), min_duration_s=0)
    s = CombinedState()
    # +1 °C per 10 s = 6 °C/min: above 5 °C/min; then flat
    got = feed(s, rule, [(0, TEMP, 60), (10, TEMP, 61), (20, TEMP, 62), (30, TEMP, 62), (40, TEMP, 62)])
    assert got == [(10, "open", WARNING), (30, "clear", 0)]
    # readings too far apart give no rate
    s = CombinedState()
    assert feed(s, rule, [(0, TEMP, 0), (600, TEMP, 100)]) == []


def test_a_persisting_warning_escalates_by_time_and_a_critical_back_at_warning_deescalates():
    t = Thresholds(warning_above=80, critical_above=95, hysteresis=2, min_duration_s=10, escalate_after_s=60, deescalate_after_s=30)
    s = ConditionState()
    got = []
    for ts in range(0, 200, 5):
        value = 85 if ts < 100 else 97 if ts < 130 else 85
        change = s.observe(float(ts), value, t)
        if change:
            got.append((ts, change.kind, change.level))
    # warning at 10 s, escalated by time at 70 s (60 s at warning); at 100-125 it is critical by
    # value (no new transition: it is critical already); back at warning from 140 s (after the
    # 10 s minimum), lowered 30 s later
    assert got == [(10, "open", WARNING), (70, "escalate", CRITICAL), (170, "deescalate", WARNING)]


def test_without_timed_settings_a_critical_alert_keeps_its_severity_until_it_clears():
    t = Thresholds(warning_above=80, critical_above=95, min_duration_s=0)
    s = ConditionState()
    kinds = [c.kind for ts, v in enumerate([97, 85, 85, 85, 85, 70]) if (c := s.observe(float(ts * 30), v, t))]
    assert kinds == ["open", "clear"]


def test_the_state_stored_as_json_continues_exactly_and_an_edited_condition_starts_afresh():
    import json

    rule = Combined(4, "or", WARNING, (Condition(TEMP, "above", 120.0, hysteresis=5.0), Condition(VIB, "above", 5.0, measure="rate")), min_duration_s=10)
    readings = [(t, TEMP, 121.0 if t < 30 else 117.0) for t in range(0, 60, 5)] + [(t + 1, VIB, 2.0 + t / 60) for t in range(0, 60, 5)]
    readings.sort()
    whole = feed(CombinedState(), rule, readings)
    assert whole == [(10, "open", WARNING)]  # 117 stays inside the hysteresis band
    state, got = CombinedState(), []
    for t, metric, value in readings:  # stored and loaded between every reading
        change = state.observe(float(t), metric, value, rule)
        if change is not None:
            got.append((t, change.kind, change.level))
        state = CombinedState.from_signals(json.loads(json.dumps(state.signals())), state.alert)
    assert got == whole
    # The threshold edited to 118: 117 is below it, and the old condition's truth is not carried over.
    edited = Combined(4, "or", WARNING, (Condition(TEMP, "above", 118.0, hysteresis=5.0), rule.conditions[1]), min_duration_s=10)
    state = CombinedState.from_signals(json.loads(json.dumps(state.signals())), state.alert)
    assert feed(state, edited, [(60, TEMP, 117.0), (65, TEMP, 117.0), (70, TEMP, 117.0)]) == [(70, "clear", 0)]


@pytest.mark.django_db
def test_the_engine_opens_one_combined_alert_per_asset_and_tells_it():
    from tests.factories import make_fleet
    from twins.alerting import AlertEngine
    from twins.models import Alert, CombinedRule, RuleCondition

    fleet = make_fleet(2)
    rule = CombinedRule.objects.create(asset_type=fleet.asset_type, name="Winding hot or vibration high", combine="or", severity="warning", min_duration_s=0)
    RuleCondition.objects.create(rule=rule, metric=fleet.metrics["temperature_c"], op="above", threshold=120)
    RuleCondition.objects.create(rule=rule, metric=fleet.metrics["vib_rms"], op="above", threshold=7.1)
    engine = AlertEngine(broadcast=False, notify=False)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    a, b = fleet.assets[0].id, fleet.assets[1].id
    temp, vib = fleet.metrics["temperature_c"].id, fleet.metrics["vib_rms"].id
    engine.process([(t0, a, temp, 125.0), (t0, a, vib, 8.0), (t0, b, temp, 60.0)])
    engine.process([(t0 + timedelta(seconds=5), a, vib, 9.0)])
    [alert] = Alert.objects.all()
    assert alert.asset_id == a and alert.combined_rule_id == rule.id and alert.severity == "warning" and alert.title.startswith("Winding hot or vibration")
    engine.process([(t0 + timedelta(seconds=10), a, temp, 100.0), (t0 + timedelta(seconds=10), a, vib, 2.0)])
    assert Alert.objects.get().state == "cleared"


@pytest.mark.django_db
def test_a_restarted_engine_continues_a_combined_rule_in_progress(settings):
    """The combination's state is stored: a new engine (a restarted worker, or another worker
    of the shared subscription) continues the minimum duration, the rate and the open alert
    where the stream was, reading by reading, exactly as one engine fed the whole stream."""
    from tests.factories import make_fleet
    from twins.alerting import AlertEngine
    from twins.models import Alert, CombinedRule, RuleCondition

    settings.ALERT_REOPEN_WINDOW_S = 0
    fleet = make_fleet(2)
    temp, vib = fleet.metrics["temperature_c"], fleet.metrics["vib_rms"]
    hot = CombinedRule.objects.create(asset_type=fleet.asset_type, name="Hot or shaking", combine="or", severity="warning", min_duration_s=10)
    RuleCondition.objects.create(rule=hot, metric=temp, op="above", threshold=120, hysteresis=5)
    RuleCondition.objects.create(rule=hot, metric=vib, op="above", threshold=7.1)
    rising = CombinedRule.objects.create(asset_type=fleet.asset_type, name="Heating fast", combine="or", severity="warning", min_duration_s=10, escalate_after_s=20)
    RuleCondition.objects.create(rule=rising, metric=temp, op="above", threshold=5.0, measure="rate")
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    # 1 °C per 5 s (12 °C/min) from 100 to 130, then flat at 130, then down to 100 at once
    temps = [100.0 + s / 5 if s <= 150 else 130.0 if s < 200 else 100.0 for s in range(0, 260, 5)]

    def stream(asset):
        rows = [(t0 + timedelta(seconds=5 * i), asset.id, temp.id, v) for i, v in enumerate(temps)]
        rows += [(t0 + timedelta(seconds=5 * i + 1), asset.id, vib.id, 2.0) for i in range(len(temps))]
        return sorted(rows, key=lambda r: r[0])

    def alerts(asset):
        return sorted((x.combined_rule_id, x.severity, x.opened_at, x.escalated_at, x.cleared_at) for x in Alert.objects.filter(asset=asset))

    one, many = fleet.assets
    AlertEngine(broadcast=False, notify=False).process(stream(one))
    whole = alerts(one)
    assert [(r, s) for r, s, *_ in whole] == sorted([(hot.id, "warning"), (rising.id, "critical")])
    assert all(cleared is not None for *_, cleared in whole)
    for row in stream(many):  # a new engine for every reading
        AlertEngine(broadcast=False, notify=False).process([row])
    assert alerts(many) == whole
