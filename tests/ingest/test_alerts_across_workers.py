"""Alerts with one truth across processes: the same scripted stream gives the same alerts,
with the same open, escalate and clear times, whether one worker stores it or three real
worker processes share it, one of them killed with SIGKILL mid-way and started again."""

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
from twins.models import Alert, AlertRule
from twins.rules import LEVEL_NAMES, ConditionState, Thresholds

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

N = 240
THRESHOLDS = Thresholds(warning_above=80.0, critical_above=100.0, hysteresis=2.0, min_duration_s=3.0)


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


def expected_alerts(t0: float, asset_index: int) -> list[tuple]:
    """What the rules decide over the whole stream in order: (severity, opened, escalated, cleared)."""
    state, alerts = ConditionState(), []
    for seq in range(1, N + 1):
        ts = t0 + seq
        change = state.observe(ts, scripted_value(asset_index, seq), THRESHOLDS)
        if change is None:
            continue
        if change.kind == "open":
            alerts.append([LEVEL_NAMES[change.level], ts, None, None])
        elif change.kind == "escalate":
            alerts[-1][0], alerts[-1][2] = LEVEL_NAMES[change.level], ts
        else:
            alerts[-1][3] = ts
    return [tuple(a) for a in alerts]


def observed_alerts(asset) -> list[tuple]:
    def epoch(dt: datetime | None) -> float | None:
        return round(dt.timestamp(), 3) if dt else None

    return [
        (a.severity, epoch(a.opened_at), epoch(a.escalated_at), epoch(a.cleared_at))
        for a in Alert.objects.filter(asset=asset, source="rule").order_by("opened_at")
    ]


def publish_script(mqtt_url: str, fleet, t0: float) -> None:
    topic = contract.topic(fleet.node.node_id, "telemetry")
    with Publisher(mqtt_url) as pub:
        for seq in range(1, N + 1):
            readings = [
                {"asset": asset.key, "ts": t0 + seq, "values": {"temperature_c": scripted_value(i, seq)}}
                for i, asset in enumerate(fleet.assets)
            ]
            pub.publish(topic, contract.encode({"seq": seq, "readings": readings}), wait=True)
            time.sleep(0.004)


def scripted_fleet():
    fleet = make_fleet(2)
    t = THRESHOLDS
    AlertRule.objects.create(
        metric=fleet.metrics["temperature_c"], warning_above=t.warning_above, critical_above=t.critical_above,
        hysteresis=t.hysteresis, min_duration_s=t.min_duration_s,
    )
    return fleet


def all_cleared(fleet) -> bool:
    return Alert.objects.filter(asset__in=fleet.assets, source="rule").exclude(state="cleared").count() == 0 and all(
        len(observed_alerts(a)) == len(expected_alerts(0, i)) for i, a in enumerate(fleet.assets)
    )


@pytest.fixture
def no_reopen(settings):
    settings.ALERT_REOPEN_WINDOW_S = 0
    settings.INGEST_SESSION_EXPIRY_S = 60


def test_one_worker_gives_the_alerts_the_rules_decide_over_the_whole_stream(transactional_db, mqtt_url, no_reopen):
    fleet = scripted_fleet()
    t0 = float(int(time.time()) - 3600)
    expected = [expected_alerts(t0, i) for i in range(2)]
    assert [len(e) for e in expected] == [2, 2] and expected[0][0][0] == "critical"  # the script really crosses
    with ingest_worker_running(mqtt_url, "alerts-one"):
        publish_script(mqtt_url, fleet, t0)
        wait_until(lambda: all_cleared(fleet), 30, what="both assets' alerts opened and cleared")
    assert [observed_alerts(a) for a in fleet.assets] == expected


def test_three_workers_with_one_killed_mid_way_give_the_same_alerts(transactional_db, mqtt_url, unique):
    fleet = scripted_fleet()
    t0 = float(int(time.time()) - 3600)
    expected = [expected_alerts(t0, i) for i in range(2)]
    group = f"alerts{unique}"
    env = {"ALERT_REOPEN_WINDOW_S": "0", "ALERT_SEQ_GAP_WAIT_S": "60"}
    ids = [f"test-alerts-{unique}-{i}" for i in range(3)]
    workers = [start_worker(mqtt_url, cid, share=group, extra_env=env) for cid in ids]
    try:
        for w in workers:
            w.wait_connected()
        publisher = threading.Thread(target=publish_script, args=(mqtt_url, fleet, t0))
        publisher.start()
        wait_until(lambda: Alert.objects.filter(asset__in=fleet.assets).exists(), 30, what="the first alert")
        workers[1].proc.send_signal(signal.SIGKILL)  # whatever it held unacknowledged, the broker keeps
        workers[1].proc.wait(10)
        time.sleep(1.0)
        workers[1] = start_worker(mqtt_url, ids[1], share=group, extra_env=env)
        workers[1].wait_connected()
        publisher.join(60)
        wait_until(lambda: all_cleared(fleet), 60, what="both assets' alerts opened and cleared")
        time.sleep(1.0)  # a late duplicate alert would land now
        assert [observed_alerts(a) for a in fleet.assets] == expected
    finally:
        logs = [w.stop() for w in workers]
    assert sum("'messages': " in log and "'messages': 0," not in log for log in logs) >= 2, "the stream must really be shared"
