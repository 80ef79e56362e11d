"""The demo's alerts mean something: an hour of the demo fleet (its plan of ages and lives, its
injected faults, every simulated node running the agent's own sampling, detection and batching)
goes through the ingest's payload validation and the alert engine with the demo rules.

In normal running the site raises at most a handful of alerts (the worn assets' own, once each,
never flapping); each injected fault raises one alert, which escalates when the fault worsens
and clears once after it ends."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from edge_node.agent import contract
from edge_node.agent.agent import Agent
from edge_node.agent.fleet import node_config
from edge_node.fleet_plan import FAULT_DURATION_S
from edge_node.fleet_runner import demo_detection, fleet_layout
from ingest.models import EdgeEvent
from ingest.payloads import parse_message
from ingest.registry import load_registry
from twins.alerting import AlertEngine
from twins.models import Alert, Asset
from web.demo import load_demo

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

# A Monday, 09:00 UTC: the air handlers' offices fill up during the hour (CO2 rises towards its
# daily peak), the motors swing with their load cycle.
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()
MINUTES = 65
# Besides the injected faults: the figure the demo promises for normal running.
MAX_OTHER_ALERTS_PER_HOUR = 6


def run_demo_fleet(var_dir, minutes: int):
    """Step every simulated node second by second for ``minutes`` (no broker: each node's outbox
    is read directly), validate what it sent as the ingest does and feed the alert engine."""
    load_demo()
    nodes = fleet_layout(now=T0, with_models=True)
    agents = [Agent(node_config(spec, "mqtt://127.0.0.1:1", var_dir / "state", detect=demo_detection()), t0=T0) for spec in nodes]
    registry, _, _ = load_registry()
    engine = AlertEngine(broadcast=False)
    faults = {a.asset_id: a.faults for spec in nodes for a in spec.assets if a.faults}
    started = time.perf_counter()
    for second in range(minutes * 60):
        now = T0 + second
        for agent in agents:
            agent.tick(now)
        if second % 10 == 9:
            for agent in agents:
                rows = agent.outbox.peek(0, 10_000)
                readings, event_ids = [], []
                for row in rows:
                    parsed = parse_message(contract.topic(agent.node_id, row.channel), row.payload, registry, now=now)
                    assert not parsed.rejects, parsed.rejects
                    readings.extend(parsed.rows)
                    for ev in parsed.events:
                        event_ids.append(EdgeEvent.objects.create(
                            node_key=agent.node_id, asset_id=ev.asset_id, ts=ev.ts, received_at=ev.ts, kind=ev.kind,
                            severity=ev.severity, message=ev.message, data=ev.data,
                        ).id)
                engine.process(readings, event_ids)
                agent.outbox.delete([r.id for r in rows])
    for agent in agents:
        agent.outbox.close()
    return faults, time.perf_counter() - started


def test_it_raises_few_alerts_in_normal_running_and_one_per_injected_fault(var_dir):
    faults, seconds = run_demo_fleet(var_dir, MINUTES)
    keys = dict(Asset.objects.values_list("id", "key"))
    alerts = list(Alert.objects.order_by("opened_at"))
    end = datetime.fromtimestamp(T0 + MINUTES * 60, UTC)

    injected = [(key, f) for key, fs in faults.items() for f in fs if f.at < MINUTES * 60]
    assert len(injected) == 5  # one every 15 minutes, the first 2 minutes in
    for key, fault in injected:
        start = datetime.fromtimestamp(T0 + fault.at, UTC)
        mine = [a for a in alerts if keys[a.asset_id] == key and a.opened_at >= start - timedelta(seconds=5)]
        assert len(mine) == 1, f"{fault.kind} on {key}: {[(a.title, a.state, a.opened_at) for a in mine]}"
        alert = mine[0]
        assert alert.opened_at <= start + timedelta(seconds=180), f"{fault.kind} on {key} seen late: {alert.opened_at}"
        assert alert.reopen_count == 0, f"{fault.kind} on {key} flapped"
        if fault.at + FAULT_DURATION_S + 12 * 60 <= MINUTES * 60:
            assert alert.state == "cleared", f"{fault.kind} on {key}: {alert.title} still {alert.state} at {end}"

    fault_keys = {key for key, _ in injected}
    others = [a for a in alerts if keys[a.asset_id] not in fault_keys]
    assert len(others) <= MAX_OTHER_ALERTS_PER_HOUR, [(keys[a.asset_id], a.title, a.message[:80], a.opened_at.strftime("%H:%M:%S"), a.state, a.reopen_count) for a in others]
    assert all(a.reopen_count <= 1 for a in others), [(keys[a.asset_id], a.title, a.reopen_count) for a in others]
    # The worn assets' alerts open in the first minutes and then stay: the rest of the hour is quiet.
    assert not [a for a in others if a.opened_at > datetime.fromtimestamp(T0 + 10 * 60, UTC)], [(keys[a.asset_id], a.title, a.opened_at) for a in others]
    print(f"{len(alerts)} alerts in {MINUTES} simulated minutes ({seconds:.0f} s): {[(keys[a.asset_id], a.title, a.state) for a in alerts]}")
