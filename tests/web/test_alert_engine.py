"""The alert engine: readings and edge events in, alerts out, with hysteresis, minimum
duration, escalation, clearing, acknowledgement and broadcasts after commit."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from ingest.live import asset_group, site_group
from ingest.models import EdgeEvent
from tests.factories import make_fleet
from twins.alerting import (
    EDGE_ALERT_QUIET_S,
    AlertEngine,
    AlertError,
    acknowledge_alert,
)
from twins.models import Alert, AlertRule
from twins.rules import CRITICAL, NORMAL, WARNING, ConditionState, Thresholds, level_of

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def rows(asset, metric, values, step_s=1.0, start=T0):
    return [(start + timedelta(seconds=i * step_s), asset.id, metric.id, v) for i, v in enumerate(values)]


@pytest.fixture
def fleet(db):
    return make_fleet(2)


@pytest.fixture
def rule(fleet):
    return AlertRule.objects.create(
        metric=fleet.metrics["temperature_c"], warning_above=80.0, critical_above=100.0, hysteresis=2.0, min_duration_s=5.0,
    )


@pytest.fixture
def engine():
    return AlertEngine(broadcast=False)


def alerts_of(asset):
    return list(Alert.objects.filter(asset=asset).order_by("id"))


# --- the pure state machine ---------------------------------------------------------------


def test_it_enters_a_level_at_the_threshold_and_leaves_it_only_past_the_hysteresis():
    t = Thresholds(warning_above=80, critical_above=100, hysteresis=2)
    assert level_of(80.5, t, NORMAL) == WARNING
    assert level_of(79.0, t, NORMAL) == NORMAL
    assert level_of(79.0, t, WARNING) == WARNING  # inside the band: stays
    assert level_of(77.9, t, WARNING) == NORMAL
    assert level_of(101, t, WARNING) == CRITICAL
    assert level_of(99, t, CRITICAL) == CRITICAL


def test_it_handles_below_thresholds_and_ignores_nan():
    t = Thresholds(warning_below=10, critical_below=5, hysteresis=1, min_duration_s=0)
    state = ConditionState()
    assert state.observe(0, 4.0, t).kind == "open"
    assert state.peak == CRITICAL
    assert state.observe(1, math.nan, t) is None
    assert state.observe(2, 10.5, t) is None  # back above 10 but inside the 1-unit band
    assert state.observe(3, 11.5, t).kind == "clear"


# --- the engine on the database -----------------------------------------------------------


def noisy_excursion(n=1200):
    """A reading every 0.5 s: the mean rises from 70 to 88 and falls back, with +-3 of noise."""
    return [70.0 + 18.0 * math.sin(math.pi * i / n) + 3.0 * math.sin(i * 1.7) * math.cos(i * 0.31) for i in range(n)]


def test_it_raises_one_alert_for_a_noisy_signal_around_the_threshold(fleet, rule, engine):
    asset, metric = fleet.assets[0], fleet.metrics["temperature_c"]
    signal = noisy_excursion()
    crossings = sum(1 for a, b in itertools.pairwise(signal) if a <= 80.0 < b)
    assert crossings > 10  # the signal really flaps across the threshold
    engine.process(rows(asset, metric, signal, step_s=0.5))
    [alert] = alerts_of(asset)
    assert (alert.severity, alert.state, alert.source) == ("warning", "cleared", "rule")
    assert "above warning 80" in alert.title


def test_it_would_flap_without_hysteresis_and_duration(fleet, engine, settings):
    settings.ALERT_REOPEN_WINDOW_S = 0
    asset, metric = fleet.assets[0], fleet.metrics["temperature_c"]
    AlertRule.objects.create(metric=metric, warning_above=80.0, hysteresis=0.0, min_duration_s=0.0)
    engine.process(rows(asset, metric, noisy_excursion(), step_s=0.5))
    assert len(alerts_of(asset)) > 10


def test_it_keeps_one_alert_for_a_flapping_rule_within_the_reopen_window(fleet, engine, settings):
    settings.ALERT_REOPEN_WINDOW_S = 600
    asset, metric = fleet.assets[0], fleet.metrics["temperature_c"]
    AlertRule.objects.create(metric=metric, warning_above=80.0, hysteresis=0.0, min_duration_s=0.0)
    engine.process(rows(asset, metric, noisy_excursion(), step_s=0.5))
    [alert] = alerts_of(asset)
    assert alert.reopen_count > 10


def test_it_waits_for_the_minimum_duration_before_opening(fleet, rule, engine):
    asset, metric = fleet.assets[0], fleet.metrics["temperature_c"]
    engine.process(rows(asset, metric, [85.0, 85.0, 85.0, 70.0, 70.0, 85.0, 85.0]))  # never 5 s in a row
    assert alerts_of(asset) == []
    engine.process(rows(asset, metric, [85.0] * 5, start=T0 + timedelta(seconds=7)))
    [alert] = alerts_of(asset)
    assert alert.opened_at == T0 + timedelta(seconds=10)  # above since T0 + 5 s


def test_it_does_not_count_a_gap_in_the_readings_as_time_held():
    t = Thresholds(warning_above=80, min_duration_s=5)
    state = ConditionState()
    assert state.observe(0, 85, t) is None
    assert state.observe(600, 85, t) is None  # ten minutes without readings: start over
    assert state.observe(605, 85, t).kind == "open"


def test_it_escalates_the_same_alert_to_critical_and_then_clears_it(fleet, rule, engine, settings):
    settings.ALERT_REOPEN_WINDOW_S = 0  # each excursion its own alert (see the re-open tests below)
    asset, metric = fleet.assets[0], fleet.metrics["temperature_c"]
    engine.process(rows(asset, metric, [85.0] * 6))
    engine.process(rows(asset, metric, [105.0] * 6, start=T0 + timedelta(seconds=6)))
    [alert] = alerts_of(asset)
    assert (alert.severity, alert.state) == ("critical", "open")
    assert alert.escalated_at == T0 + timedelta(seconds=11)
    # Back to warning keeps the severity; inside 80 - 2 for 5 s clears it.
    engine.process(rows(asset, metric, [85.0] * 6 + [79.0] * 10 + [77.0] * 4, start=T0 + timedelta(seconds=12)))
    assert (alerts_of(asset)[0].state, alerts_of(asset)[0].severity) == ("open", "critical")
    engine.process(rows(asset, metric, [77.0] * 6, start=T0 + timedelta(seconds=32)))
    [alert] = alerts_of(asset)
    assert alert.state == "cleared"
    assert alert.cleared_at == T0 + timedelta(seconds=33)  # below 78 since T0 + 28 s
    # A new excursion after the clear is a new alert.
    engine.process(rows(asset, metric, [90.0] * 6, start=T0 + timedelta(seconds=60)))
    assert [a.state for a in alerts_of(asset)] == ["cleared", "open"]


def test_it_continues_an_open_alert_after_a_restart(fleet, rule, engine):
    asset, metric = fleet.assets[0], fleet.metrics["temperature_c"]
    engine.process(rows(asset, metric, [85.0] * 6))
    restarted = AlertEngine(broadcast=False)
    restarted.process(rows(asset, metric, [85.0] * 6 + [105.0] * 6, start=T0 + timedelta(seconds=6)))
    [alert] = alerts_of(asset)
    assert alert.severity == "critical"


def test_it_skips_rows_without_a_rule_and_picks_up_new_rules(fleet, engine):
    asset = fleet.assets[0]
    vib = fleet.metrics["vib_rms"]
    engine.process(rows(asset, vib, [99.0] * 10))
    assert engine.stats["rows_checked"] == 0 and alerts_of(asset) == []
    AlertRule.objects.create(metric=vib, critical_above=50.0, min_duration_s=0)
    engine.load_rules()
    engine.process(rows(asset, vib, [99.0], start=T0 + timedelta(seconds=20)))
    assert [(a.severity, a.metric_id) for a in alerts_of(asset)] == [("critical", vib.id)]


def test_it_opens_one_alert_per_asset(fleet, rule, engine):
    metric = fleet.metrics["temperature_c"]
    batch = rows(fleet.assets[0], metric, [85.0] * 6) + rows(fleet.assets[1], metric, [60.0] * 6)
    engine.process(batch)
    assert len(alerts_of(fleet.assets[0])) == 1 and alerts_of(fleet.assets[1]) == []


def _event(fleet, asset, kind="anomaly", severity="warning", ts=T0, score=0.9):
    return EdgeEvent.objects.create(
        node_key=fleet.node.node_id, asset=asset, ts=ts, received_at=ts, kind=kind, severity=severity, message=f"{kind} score {score}", data={"score": score},
    ).id


def test_it_turns_edge_events_into_one_alert_per_asset_episode(fleet, engine):
    asset, other = fleet.assets
    engine.process([], [_event(fleet, asset), _event(fleet, asset, ts=T0 + timedelta(seconds=3))])
    engine.process([], [_event(fleet, asset, severity="critical", ts=T0 + timedelta(seconds=9))])
    engine.process([], [_event(fleet, asset, kind="fault"), _event(fleet, other, kind="fault")])
    [anomaly] = alerts_of(asset)  # the second kind of event during the episode is counted on it
    assert (anomaly.source, anomaly.kind, anomaly.severity, anomaly.occurrences, anomaly.value) == ("edge", "anomaly", "critical", 4, 0.9)
    assert anomaly.escalated_at is not None
    [fault] = alerts_of(other)
    assert (fault.kind, fault.severity, fault.title) == ("fault", "warning", "Fault detected at the edge")


def test_it_makes_one_alert_of_an_edge_anomaly_and_the_rule_alert_that_follows(fleet, rule, engine):
    asset, metric = fleet.assets[0], fleet.metrics["temperature_c"]
    engine.process([], [_event(fleet, asset, ts=T0)])  # the node sees the jump first
    engine.process(rows(asset, metric, [85.0] * 6, start=T0 + timedelta(seconds=1)))
    engine.process(rows(asset, metric, [105.0] * 6, start=T0 + timedelta(seconds=7)))
    engine.process([], [_event(fleet, asset, kind="anomaly_cleared", severity="info", ts=T0 + timedelta(seconds=20))])
    [alert] = alerts_of(asset)
    assert (alert.source, alert.metric_id, alert.severity, alert.state) == ("rule", metric.id, "critical", "open")
    assert alert.opened_at == T0 and "First seen by the edge" in alert.message
    # The rule clears it; the node's detector, still settling, reports again: counted, not a new alert.
    engine.process(rows(asset, metric, [70.0] * 8, start=T0 + timedelta(seconds=30)))
    engine.process([], [_event(fleet, asset, ts=T0 + timedelta(seconds=60))])
    [alert] = alerts_of(asset)
    assert alert.state == "cleared" and alert.occurrences == 2


def test_it_clears_edge_alerts_that_went_quiet(fleet, engine):
    asset = fleet.assets[0]
    engine.process([], [_event(fleet, asset)])
    assert engine.clear_quiet_edge_alerts(now=timezone.now()) == []
    cleared = engine.clear_quiet_edge_alerts(now=timezone.now() + timedelta(seconds=EDGE_ALERT_QUIET_S + 1))
    assert len(cleared) == 1 and alerts_of(asset)[0].state == "cleared"


def test_it_clears_an_edge_alert_when_the_node_says_the_anomaly_is_over(fleet, engine):
    asset = fleet.assets[0]
    engine.process([], [_event(fleet, asset), _event(fleet, asset, severity="critical", ts=T0 + timedelta(seconds=5))])
    engine.process([], [_event(fleet, asset, kind="anomaly_cleared", severity="info", ts=T0 + timedelta(seconds=60))])
    [alert] = alerts_of(asset)  # no "anomaly_cleared" alert of its own
    assert (alert.kind, alert.severity, alert.state, alert.cleared_at) == ("anomaly", "critical", "cleared", T0 + timedelta(seconds=60))


def test_it_takes_over_an_edge_alert_that_cleared_just_before_the_rule_fired(fleet, rule, engine):
    asset, metric = fleet.assets[0], fleet.metrics["temperature_c"]
    engine.process([], [_event(fleet, asset, ts=T0)])
    engine.process([], [_event(fleet, asset, kind="anomaly_cleared", severity="info", ts=T0 + timedelta(seconds=20))])
    engine.process(rows(asset, metric, [85.0] * 6, start=T0 + timedelta(seconds=40)))  # a slow signal crosses later
    [alert] = alerts_of(asset)
    assert (alert.source, alert.state, alert.cleared_at, alert.opened_at) == ("rule", "open", None, T0)


# --- the same alert when it comes back ------------------------------------------------------


def test_it_reopens_an_alert_that_comes_back_within_the_window_with_its_acknowledgement(fleet, rule, engine, manager, settings):
    settings.ALERT_REOPEN_WINDOW_S = 600
    asset, metric = fleet.assets[0], fleet.metrics["temperature_c"]
    engine.process(rows(asset, metric, [85.0] * 6))
    [alert] = alerts_of(asset)
    acknowledge_alert(alert.id, manager, "fan belt ordered")
    engine.process(rows(asset, metric, [70.0] * 6, start=T0 + timedelta(seconds=10)))
    assert alerts_of(asset)[0].state == "cleared"
    # Back above the warning five minutes later: the same row, still acknowledged, counted.
    engine.process(rows(asset, metric, [86.0] * 6, start=T0 + timedelta(seconds=300)))
    [again] = alerts_of(asset)
    assert again.id == alert.id
    assert (again.state, again.severity, again.reopen_count, again.ack_comment) == ("acknowledged", "warning", 1, "fan belt ordered")
    assert again.opened_at == T0 + timedelta(seconds=5) and again.cleared_at is None
    assert again.reopened_at == T0 + timedelta(seconds=305)
    # Worse than what was acknowledged: the same alert, open again for a fresh acknowledgement.
    engine.process(rows(asset, metric, [70.0] * 6, start=T0 + timedelta(seconds=320)))
    engine.process(rows(asset, metric, [110.0] * 6, start=T0 + timedelta(seconds=400)))
    [worse] = alerts_of(asset)
    assert (worse.id, worse.state, worse.severity, worse.reopen_count) == (alert.id, "open", "critical", 2)
    assert worse.acknowledged_by == manager  # who acknowledged the earlier episode stays on record


def test_it_opens_a_new_alert_after_the_window(fleet, rule, engine, settings):
    settings.ALERT_REOPEN_WINDOW_S = 60
    asset, metric = fleet.assets[0], fleet.metrics["temperature_c"]
    engine.process(rows(asset, metric, [85.0] * 6 + [70.0] * 6))
    engine.process(rows(asset, metric, [85.0] * 6, start=T0 + timedelta(seconds=200)))
    assert [a.state for a in alerts_of(asset)] == ["cleared", "open"]


def test_it_reopens_an_edge_alert_that_comes_back_within_the_window(fleet, engine, settings):
    settings.ALERT_REOPEN_WINDOW_S = 600
    asset = fleet.assets[0]
    engine.process([], [_event(fleet, asset)])
    engine.process([], [_event(fleet, asset, kind="anomaly_cleared", severity="info", ts=T0 + timedelta(seconds=30))])
    engine.process([], [_event(fleet, asset, ts=T0 + timedelta(seconds=120))])
    [alert] = alerts_of(asset)
    assert (alert.state, alert.reopen_count) == ("open", 1)


# --- acknowledgement and broadcasts -------------------------------------------------------


def test_it_acknowledges_once_with_who_when_and_comment(fleet, rule, engine, manager):
    asset, metric = fleet.assets[0], fleet.metrics["temperature_c"]
    engine.process(rows(asset, metric, [85.0] * 6))
    [alert] = alerts_of(asset)
    acked = acknowledge_alert(alert.id, manager, "  crew on the way  ")
    assert (acked.state, acked.acknowledged_by, acked.ack_comment) == ("acknowledged", manager, "crew on the way")
    assert acked.acknowledged_at is not None
    with pytest.raises(AlertError, match="acknowledged already"):
        acknowledge_alert(alert.id, manager, "again")
    # Escalation re-opens it: a critical condition needs a fresh acknowledgement.
    engine.process(rows(asset, metric, [105.0] * 6, start=T0 + timedelta(seconds=6)))
    assert alerts_of(asset)[0].state == "open"


async def _receive(layer, channel, timeout=1.0):
    import asyncio

    return await asyncio.wait_for(layer.receive(channel), timeout)


def test_it_broadcasts_changes_to_the_site_and_asset_groups_after_commit(fleet, rule, settings, django_capture_on_commit_callbacks):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    asset, metric = fleet.assets[0], fleet.metrics["temperature_c"]
    site_channel = async_to_sync(layer.new_channel)()
    asset_channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(site_group(fleet.site.id), site_channel)
    async_to_sync(layer.group_add)(asset_group(asset.id), asset_channel)
    engine = AlertEngine(notify=False)  # notifications have their own tests (tests/notify)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        engine.process(rows(asset, metric, [85.0] * 6))
    assert len(callbacks) == 1  # nothing is sent before the commit
    for callback in callbacks:
        callback()
    for channel in (site_channel, asset_channel):
        message = async_to_sync(_receive)(layer, channel)
        assert message["type"] == "alert.update"
        assert (message["alert"]["asset"], message["alert"]["severity"], message["alert"]["state"]) == (asset.id, "warning", "open")
        assert message["alert"]["asset_name"] == asset.name


def test_it_costs_no_query_for_rows_without_a_rule(fleet, rule, engine, django_assert_num_queries):
    engine.load_rules()
    asset, vib = fleet.assets[0], fleet.metrics["vib_rms"]
    with django_assert_num_queries(0):
        engine.process(rows(asset, vib, [99.0] * 1000))
    assert engine.stats["rows_checked"] == 0


def test_time_based_escalation_and_deescalation_count_across_batches(fleet, engine, settings):
    """The time a level has been in force is part of the stored state: readings arriving one
    batch at a time (one message per batch on a live stream) escalate and de-escalate at the
    same reading times as one batch of the whole stream."""
    settings.ALERT_REOPEN_WINDOW_S = 0
    t = Thresholds(warning_above=80, critical_above=95, hysteresis=2, min_duration_s=10, escalate_after_s=60, deescalate_after_s=30)
    metric = fleet.metrics["temperature_c"]
    AlertRule.objects.create(metric=metric, warning_above=80, critical_above=95, hysteresis=2, min_duration_s=10, escalate_after_s=60, deescalate_after_s=30)
    values = [85.0 if s < 100 else 97.0 if s < 130 else 85.0 for s in range(0, 200, 5)]
    expected, state = [], ConditionState()
    for i, v in enumerate(values):
        change = state.observe((T0 + timedelta(seconds=5 * i)).timestamp(), v, t)
        if change:
            expected.append((change.kind, T0 + timedelta(seconds=5 * i)))
    assert [k for k, _ in expected] == ["open", "escalate", "deescalate"]
    asset = fleet.assets[0]
    for row in rows(asset, metric, values, step_s=5.0):
        engine.process([row])
    [alert] = alerts_of(asset)
    assert (alert.opened_at, alert.escalated_at) == (expected[0][1], expected[1][1])
    assert alert.severity == "warning", "the critical alert back at warning for 30 s is lowered"
