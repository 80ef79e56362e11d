"""Alerts with one truth across processes: the same scripted stream gives the same alerts,
with the same open, escalate and clear times, whether one worker stores it or three real
worker processes share it, one of them killed with SIGKILL mid-way and started again. That
holds for a threshold rule on one metric and for combined rules (temperature high OR
vibration high; vibration rising fast, escalated by time)."""

from __future__ import annotations

import signal
import threading
import time
from datetime import datetime

import pytest

from edge_node.agent import contract
from tests.factories import make_fleet
from tests.helpers import Publisher, ingest_worker_running, wait_until
from tests.ingest.test_delivery import start_worker
from twins.composite import Combined, CombinedState, Condition
from twins.models import Alert, AlertRule, CombinedRule, RuleCondition
from twins.rules import LEVEL_NAMES, WARNING, ConditionState, Thresholds

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

N = 240
THRESHOLDS = Thresholds(warning_above=80.0, critical_above=100.0, hysteresis=2.0, min_duration_s=3.0)
TEMP, VIB = "temperature_c", "vib_rms"
# (name, combine, min_duration_s, escalate_after_s, conditions as (metric, op, threshold, measure, hysteresis))
COMBINED = [
    ("Hot or shaking", "or", 3.0, None, ((TEMP, "above", 100.0, "value", 2.0), (VIB, "above", 5.0, "value", 0.3))),
    ("Vibration rising", "or", 3.0, 15.0, ((VIB, "above", 4.0, "rate", 1.0),)),
]


def scripted_value(asset_index: int, seq: int) -> float:
    """Normal, warning, critical, back to warning, normal, and a second warning excursion;
    the second asset runs 17 readings behind. A wobble of +-1.5 stays inside the hysteresis."""
    s = seq - 17 * asset_index
    wobble = 1.5 if s % 3 == 0 else -1.0
    if s < 30:
        base = 70.0
    elif s < 80:
        base = 86.0
    elif s < 120:
        base = 106.0
    elif s < 150:
        base = 86.0
    elif s < 190:
        base = 70.0
    else:
        base = 90.0 if s < 215 else 70.0
    return base + wobble


def scripted_vibration(asset_index: int, seq: int) -> float:
    """Steady with a small wobble (a rate of 3 mm/s per minute, under the rate rule), a ramp up
    at 6 per minute past 5 mm/s, a plateau, a ramp down; 17 readings behind on the second asset."""
    s = seq - 17 * asset_index
    if s < 100:
        return 2.0 + (0.05 if s % 4 == 0 else 0.0)
    if s < 140:
        return 2.0 + 0.1 * (s - 100)
    if s < 160:
        return 6.0
    if s < 200:
        return 6.0 - 0.1 * (s - 160)
    return 2.0


def expected_alerts(t0: float, asset_index: int) -> list[tuple]:
    """What the threshold rule decides over the whole stream in order: (severity, opened, escalated, cleared)."""
    state = ConditionState()
    return _alerts((ts, state.observe(ts, scripted_value(asset_index, seq), THRESHOLDS)) for seq, ts in _times(t0))


def expected_combined(t0: float, asset_index: int) -> list[list[tuple]]:
    """The same for each combined rule, fed the readings in the order the node sent them."""
    ids = {TEMP: 1, VIB: 2}
    out = []
    for i, (_name, combine, duration, escalate, conditions) in enumerate(COMBINED):
        rule = Combined(i, combine, WARNING, tuple(Condition(ids[m], op, th, measure, h) for m, op, th, measure, h in conditions), duration, escalate)
        state = CombinedState()

        def changes(rule=rule, state=state):
            for seq, ts in _times(t0):
                yield ts, state.observe(ts, ids[TEMP], scripted_value(asset_index, seq), rule)
                yield ts, state.observe(ts, ids[VIB], scripted_vibration(asset_index, seq), rule)

        out.append(_alerts(changes()))
    return out


def _times(t0: float):
    return ((seq, t0 + seq) for seq in range(1, N + 1))


def _alerts(changes) -> list[tuple]:
    """(severity, opened, escalated, cleared) of each alert the transitions make."""
    alerts = []
    for ts, change in changes:
        if change is None:
            continue
        if change.kind == "open":
            alerts.append([LEVEL_NAMES[change.level], ts, None, None])
        elif change.kind == "escalate":
            alerts[-1][0], alerts[-1][2] = LEVEL_NAMES[change.level], ts
        elif change.kind == "clear":
            alerts[-1][3] = ts
    return [tuple(a) for a in alerts]


def observed_alerts(asset, combined_rule=None) -> list[tuple]:
    def epoch(dt: datetime | None) -> float | None:
        return round(dt.timestamp(), 3) if dt else None

    alerts = Alert.objects.filter(asset=asset, source="rule")
    alerts = alerts.filter(combined_rule=combined_rule) if combined_rule else alerts.filter(metric__isnull=False)
    return [(a.severity, epoch(a.opened_at), epoch(a.escalated_at), epoch(a.cleared_at)) for a in alerts.order_by("opened_at")]


def observed(fleet) -> dict:
    rules = list(CombinedRule.objects.filter(asset_type=fleet.asset_type).order_by("id"))
    return {
        "threshold": [observed_alerts(a) for a in fleet.assets],
        "combined": [[observed_alerts(a, rule) for rule in rules] for a in fleet.assets],
    }


def expected(t0: float) -> dict:
    return {"threshold": [expected_alerts(t0, i) for i in range(2)], "combined": [expected_combined(t0, i) for i in range(2)]}


def publish_script(mqtt_url: str, fleet, t0: float, slow: range = range(0)) -> None:
    """The script as the node sends it; the seqs in ``slow`` at 12 a second (room for a kill)."""
    topic = contract.topic(fleet.node.node_id, "telemetry")
    with Publisher(mqtt_url) as pub:
        for seq in range(1, N + 1):
            readings = [
                {"asset": asset.key, "ts": t0 + seq, "values": {TEMP: scripted_value(i, seq), VIB: scripted_vibration(i, seq)}}
                for i, asset in enumerate(fleet.assets)
            ]
            pub.publish(topic, contract.encode({"seq": seq, "readings": readings}), wait=True)
            time.sleep(0.08 if seq in slow else 0.004)


def scripted_fleet():
    fleet = make_fleet(2)
    t = THRESHOLDS
    AlertRule.objects.create(
        metric=fleet.metrics["temperature_c"], warning_above=t.warning_above, critical_above=t.critical_above,
        hysteresis=t.hysteresis, min_duration_s=t.min_duration_s,
    )
    for name, combine, duration, escalate, conditions in COMBINED:
        rule = CombinedRule.objects.create(
            asset_type=fleet.asset_type, name=name, combine=combine, severity="warning", min_duration_s=duration, escalate_after_s=escalate,
        )
        for metric, op, threshold, measure, hysteresis in conditions:
            RuleCondition.objects.create(rule=rule, metric=fleet.metrics[metric], op=op, threshold=threshold, measure=measure, hysteresis=hysteresis)
    return fleet


def counts(alerts: dict) -> list[int]:
    return [len(a) for a in alerts["threshold"]] + [len(r) for asset in alerts["combined"] for r in asset]


def all_cleared(fleet) -> bool:
    """As many alerts as the script causes are there, all cleared."""
    active = Alert.objects.filter(asset__in=fleet.assets, source="rule").exclude(state="cleared").exists()
    return not active and counts(observed(fleet)) == counts(expected(0.0))


@pytest.fixture
def no_reopen(settings):
    settings.ALERT_REOPEN_WINDOW_S = 0
    settings.INGEST_SESSION_EXPIRY_S = 60


def test_one_worker_gives_the_alerts_the_rules_decide_over_the_whole_stream(transactional_db, mqtt_url, no_reopen):
    fleet = scripted_fleet()
    t0 = float(int(time.time()) - 3600)
    want = expected(t0)
    # the script really crosses: per asset two threshold alerts, the first escalated; two "hot
    # or shaking" alerts (temperature, then vibration); one rate alert, escalated by time
    assert counts(want) == [2, 2, 2, 1, 2, 1] and want["threshold"][0][0][0] == "critical"
    assert want["combined"][0][1][0][0] == "critical" and want["combined"][0][1][0][2] is not None
    with ingest_worker_running(mqtt_url, "alerts-one"):
        publish_script(mqtt_url, fleet, t0)
        wait_until(lambda: all_cleared(fleet), 30, what="both assets' alerts opened and cleared")
    assert observed(fleet) == want


def test_three_workers_with_one_killed_mid_way_give_the_same_alerts(transactional_db, mqtt_url, unique):
    fleet = scripted_fleet()
    t0 = float(int(time.time()) - 3600)
    want = expected(t0)
    rising = CombinedRule.objects.get(asset_type=fleet.asset_type, name="Vibration rising")
    group = f"alerts{unique}"
    env = {"ALERT_REOPEN_WINDOW_S": "0", "ALERT_SEQ_GAP_WAIT_S": "60"}
    ids = [f"test-alerts-{unique}-{i}" for i in range(3)]
    workers = [start_worker(mqtt_url, cid, share=group, extra_env=env) for cid in ids]
    try:
        for w in workers:
            w.wait_connected()
        # The kill lands while the first rate alert is open and counting towards its escalation
        # (opened at seq 104, escalated at 119: the publisher slows down over those seqs).
        publisher = threading.Thread(target=publish_script, args=(mqtt_url, fleet, t0, range(95, 130)))
        publisher.start()
        in_progress = Alert.objects.filter(asset=fleet.assets[0], combined_rule=rising)
        wait_until(in_progress.exists, 30, what="the first rate-of-change alert")
        workers[1].proc.send_signal(signal.SIGKILL)  # whatever it held unacknowledged, the broker keeps
        workers[1].proc.wait(10)
        assert in_progress.get().escalated_at is None, "the alert escalated before the kill; the test proves less than it says"
        time.sleep(1.0)
        workers[1] = start_worker(mqtt_url, ids[1], share=group, extra_env=env)
        workers[1].wait_connected()
        publisher.join(60)
        wait_until(lambda: all_cleared(fleet), 60, what="both assets' alerts opened and cleared")
        time.sleep(1.0)  # a late duplicate alert would land now
        assert observed(fleet) == want
    finally:
        logs = [w.stop() for w in workers]
    assert sum("'messages': " in log and "'messages': 0," not in log for log in logs) >= 2, "the stream must really be shared"
