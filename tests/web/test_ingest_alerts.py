"""The alert engine inside the real ingest worker: readings over MQTT open alerts, edge events
become alerts, and a failing alert engine never stops the ingest."""

from __future__ import annotations

import time

import pytest

from edge_node.agent import contract
from ingest import timeseries
from tests.factories import make_fleet
from tests.helpers import Publisher, ingest_worker_running, wait_until
from twins.models import Alert, AlertRule

pytestmark = [pytest.mark.mqtt, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(mqtt_url, settings):
    settings.INGEST_SESSION_EXPIRY_S = 60
    with ingest_worker_running(mqtt_url, "alerts") as w:
        yield w


def publish(mqtt_url, fleet, channel, payloads):
    with Publisher(mqtt_url) as pub:
        for payload in payloads:
            pub.publish(contract.topic(fleet.node.node_id, channel), contract.encode(payload))


def test_it_opens_one_alert_from_readings_published_over_mqtt(worker, mqtt_url):
    fleet = make_fleet(1)
    asset = fleet.assets[0]
    AlertRule.objects.create(metric=fleet.metrics["temperature_c"], warning_above=80.0, hysteresis=1.0, min_duration_s=1.0)
    worker.alerts.rules_loaded_at = float("-inf")
    t0 = time.time() - 5
    batches = [{"seq": i + 1, "readings": [{"asset": asset.key, "ts": t0 + i * 0.25, "values": {"temperature_c": 81.0 + (i % 3) * 0.3}}]} for i in range(12)]
    publish(mqtt_url, fleet, "telemetry", batches)
    wait_until(lambda: Alert.objects.filter(asset=asset).exists(), 10, what="an alert")
    wait_until(lambda: worker.stats["messages"] >= 12, 10, what="all batches")
    [alert] = Alert.objects.filter(asset=asset)
    assert (alert.source, alert.severity, alert.state) == ("rule", "warning", "open")


def test_it_turns_an_edge_event_into_an_alert(worker, mqtt_url):
    fleet = make_fleet(1)
    asset = fleet.assets[0]
    event = {"seq": 1, "asset": asset.key, "ts": time.time(), "kind": "anomaly", "severity": "critical", "message": "bearing pattern", "score": 0.97}
    publish(mqtt_url, fleet, "events", [event])
    wait_until(lambda: Alert.objects.filter(asset=asset, source="edge").exists(), 10, what="an edge alert")
    alert = Alert.objects.get(asset=asset)
    assert (alert.kind, alert.severity, alert.message) == ("anomaly", "critical", "bearing pattern")


def test_it_keeps_ingesting_when_the_alert_engine_fails(worker, mqtt_url):
    fleet = make_fleet(1)

    class BrokenEngine:
        def watched_metrics(self):
            raise RuntimeError("rules table unreadable")

        def process_stored(self, node_keys, event_ids):
            raise RuntimeError("rules table unreadable")

        catch_up = watched_metrics

    worker.alerts = BrokenEngine()
    publish(mqtt_url, fleet, "telemetry", [{"seq": 1, "readings": [{"asset": fleet.assets[0].key, "ts": time.time(), "values": {"temperature_c": 20.0}}]}])
    wait_until(lambda: timeseries.count_rows(fleet.assets[0].id) == 1, 10, what="the reading stored")
    wait_until(lambda: worker.stats["alert_failures"] >= 1, 5, what="the failure counted")
