"""The agent against a real broker: contract payloads, status, events, store-and-forward."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from edge_node.agent.agent import Agent
from edge_node.agent.asset_types import ASSET_TYPES
from edge_node.agent.config import AgentConfig, BrokerConfig, FilterConfig, SourceConfig
from edge_node.agent.fleet import AssetSpec, FaultSpec, NodeSpec, run_fleet
from tests.agent.conftest import start_agent_process
from tests.helpers import wait_until

pytestmark = pytest.mark.mqtt


def assert_contract_readings(batches: list[dict], types: dict[str, str]) -> int:
    n = 0
    for b in batches:
        assert set(b) == {"seq", "readings"} and isinstance(b["seq"], int)
        for r in b["readings"]:
            assert set(r) == {"asset", "ts", "values"} and isinstance(r["ts"], float)
            specs = {m.name: m for m in ASSET_TYPES[types[r["asset"]]]["metrics"]}
            for name, v in r["values"].items():
                assert specs[name].min_value <= v <= specs[name].max_value, (r["asset"], name, v)
            n += 1
    return n


def test_it_publishes_batches_status_and_an_injected_fault_within_a_second(broker_url, node_id, subscribe, motor_models,
                                                                           tmp_path):
    sub = subscribe(broker_url, node_id)
    cfg = AgentConfig(node_id=node_id, broker=BrokerConfig(url=broker_url), state_dir=tmp_path, models_dir=motor_models,
                      publish_interval_s=0.2, heartbeat_interval_s=0.5,
                      sources=[SourceConfig("induction_motor", "m1", seed=1, sample_interval_s=0.1),
                               SourceConfig("hvac_unit", "ahu1", seed=2, sample_interval_s=0.1)])
    agent = Agent(cfg)
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    runner.start()
    try:
        wait_until(lambda: agent.stats.samples > 60, 15, what="the detectors to warm up")
        assert [e for e in sub.of("events") if e["asset"] == "m1"] == []
        injected = time.time()
        agent.inject_fault("m1", "bearing_impact", duration_s=5.0)
        event = wait_until(lambda: next((e for e in sub.of("events") if e["asset"] == "m1"), None), 5,
                           what="the anomaly event")
        latency = time.time() - injected
        assert latency < 1.0, f"event took {latency:.2f} s"
        assert event["kind"] == "anomaly" and event["severity"] in ("warning", "critical")
        assert event["score"] > 0 and event["model_version"] in ("induction_motor-anomaly@1", "ewma-z")
        assert len(event["snippet"]["vibration"]) == 128
        status = wait_until(lambda: [s for s in sub.of("status") if s["state"] == "online"], 5, what="a status")[-1]
        assert status["versions"]["model"] == "induction_motor-anomaly@1"
        assert status["versions"]["agent"] and status["memory_mb"] > 0 and "cpu_percent" in status
        assert status["buffer_depth"] >= 0 and status["dropped"] == 0
    finally:
        stop.set()
        runner.join(10)
    batches = sub.of("telemetry")
    seqs = [b["seq"] for b in batches]
    assert sorted(set(seqs)) == list(range(1, max(seqs) + 1))
    assert assert_contract_readings(batches, {"m1": "induction_motor", "ahu1": "hvac_unit"}) > 50
    wait_until(lambda: sub.of("status")[-1]["state"] == "offline", 5, what="the offline status on stop")


def write_config(path: Path, node: str, url: str, state: Path) -> Path:
    path.write_text(f"""
[node]
id = "{node}"
state_dir = "{state}"
publish_interval_s = 0.2
heartbeat_interval_s = 1.0
[broker]
url = "{url}"
[[sources]]
plugin = "centrifugal_pump"
asset = "p1"
seed = 4
sample_interval_s = 0.1
[[sources]]
plugin = "turbofan"
asset = "e1"
seed = 1
sample_interval_s = 0.1
[sources.params]
cycle_s = 0.1
""")
    return path


def outbox_depth(state: Path, node: str) -> int:
    db = sqlite3.connect(state / f"{node}.outbox.sqlite")
    try:
        return db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    finally:
        db.close()


def test_store_and_forward_survives_a_broker_outage_and_an_agent_kill(broker_url, broker_proxy, node_id, subscribe,
                                                                       tmp_path):
    state = tmp_path / "state"
    # The agent reaches the broker through a proxy we can cut; the subscriber stays connected.
    config = write_config(tmp_path / "node.toml", node_id, broker_proxy.url, state)
    broker_proxy.start()
    sub = subscribe(broker_url, node_id)
    agent = start_agent_process(config)
    try:
        wait_until(lambda: len(sub.of("telemetry")) >= 5, 15, what="live telemetry")
        broker_proxy.stop()
        wait_until(lambda: outbox_depth(state, node_id) >= 5, 15, what="the agent to buffer")
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
        buffered = outbox_depth(state, node_id)
        assert buffered >= 5
        # Restart with the broker still down: it must keep buffering, seq going on.
        agent = start_agent_process(config)
        wait_until(lambda: outbox_depth(state, node_id) > buffered + 3, 15, what="buffering after the restart")
        broker_proxy.start()

        def all_delivered():
            if outbox_depth(state, node_id) > 0:
                return False
            seqs = {b["seq"] for b in sub.of("telemetry")}
            return seqs and seqs == set(range(1, max(seqs) + 1))

        wait_until(all_delivered, 30, interval=0.2, what="every buffered batch, seq contiguous")
        # the SIGKILL fired the last will; the restarted agent says online again at once
        states = [s["state"] for s in sub.of("status")]
        assert "offline" in states and states[-1] == "online"
    finally:
        agent.send_signal(signal.SIGTERM)
        out, _ = agent.communicate(timeout=15)
    assert agent.returncode == 0, out
    batches = sub.of("telemetry")
    assert assert_contract_readings(batches, {"p1": "centrifugal_pump", "e1": "turbofan"}) > 0
    # C-MAPSS cycles are played one by one (the restart replays from cycle 1): none was
    # lost over the outage and the kill.
    cycles = [c for _, c in sorted({(r["ts"], r["values"]["cycle"]) for b in batches for r in b["readings"]
                                    if r["asset"] == "e1"})]
    assert len(cycles) > 30
    restarts = [i for i in range(1, len(cycles)) if cycles[i] != cycles[i - 1] + 1]
    assert [cycles[i] for i in restarts] == [1.0], cycles


def test_run_fleet_drives_several_nodes_with_injected_failures(broker_url, subscribe, tmp_path):
    prefix = f"t-fleet-{os.urandom(4).hex()}"
    types = {"induction_motor": "m", "centrifugal_pump": "p", "hvac_unit": "h", "turbofan": "e"}
    nodes = [NodeSpec(f"{prefix}-{i}", assets=[
        AssetSpec(f"{prefix}-{i}-{short}", t, seed=10 * i + j,
                  faults=[FaultSpec(at=100.0, duration_s=600.0)] if t == "centrifugal_pump" else [])
        for j, (t, short) in enumerate(types.items())]) for i in range(2)]
    subs = [subscribe(broker_url, n.node_id) for n in nodes]
    stop = threading.Event()
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("report", run_fleet(
        nodes, broker_url, tmp_path, speedup=20.0, stop_event=stop, publish_interval_s=0.1)), daemon=True)
    runner.start()
    try:
        # The pumps cavitate from sim 100 s = wall 5 s, after the detectors warmed up (2 s).
        wait_until(lambda: all(any(e["kind"] == "anomaly" for e in s.of("events")) for s in subs), 20,
                   what="each node's pump anomaly")
    finally:
        stop.set()
        runner.join(20)
    report = result["report"]
    assert [n.node_id for n in report.nodes] == [n.node_id for n in nodes]
    for node, s in zip(nodes, subs, strict=True):
        asset_types = {a.asset_id: a.asset_type for a in node.assets}
        batches = s.of("telemetry")
        assert assert_contract_readings(batches, asset_types) > 0
        assert {r["asset"] for b in batches for r in b["readings"]} == set(asset_types)
        assert {e["asset"] for e in s.of("events") if e["kind"] == "anomaly"} >= {a.asset_id for a in node.assets
                                                                                 if a.faults}


def test_a_fleet_reconnects_after_a_broker_outage_and_delivers_its_buffer(broker_url, broker_proxy, subscribe,
                                                                          tmp_path):
    from edge_node.agent.fleet import Fleet

    broker_proxy.start()
    nodes = [NodeSpec(f"t-fleet-rc-{os.urandom(3).hex()}-{i}", assets=[AssetSpec(f"h{i}", "hvac_unit", seed=i)])
             for i in range(3)]
    subs = [subscribe(broker_url, n.node_id) for n in nodes]
    fleet = Fleet(nodes, broker_proxy.url, tmp_path, publish_interval_s=0.1)
    fleet.start()
    try:
        wait_until(lambda: all(len(s.of("telemetry")) >= 3 for s in subs), 10, what="live telemetry from every node")
        broker_proxy.stop()
        wait_until(lambda: all(a.outbox.depth >= 5 for a in fleet.agents.values()), 10, what="every node buffering")
        buffered_up_to = {a.node_id: a.outbox.last_seq("telemetry") for a in fleet.agents.values()}
        broker_proxy.start()

        def delivered(s, agent):
            # Every message buffered in the outage arrived, no gap up to the newest; the nodes
            # keep publishing, so the newest one or two may still be in flight.
            seqs = {b["seq"] for b in s.of("telemetry")}
            return (max(seqs) >= buffered_up_to[agent.node_id] and seqs == set(range(1, max(seqs) + 1))
                    and agent.outbox.depth <= 2)

        try:
            wait_until(lambda: all(delivered(s, a) for s, a in zip(subs, fleet.agents.values(), strict=True)), 30,
                       interval=0.2, what="every node's buffer, seq contiguous")
        except AssertionError:
            state = [(a.node_id, a.link.connected, a.outbox.depth, a.outbox.last_seq("telemetry"), len(a._inflight),
                      sorted(set(range(1, a.outbox.last_seq("telemetry") + 1)) - {b["seq"] for b in s.of("telemetry")}))
                     for s, a in zip(subs, fleet.agents.values(), strict=True)]
            raise AssertionError(f"not delivered: {state}") from None
    finally:
        report = fleet.stop()
    assert all(n.dropped == 0 for n in report.nodes)


def test_a_fault_injected_over_the_cmd_topic_is_acknowledged_and_raises_an_event(broker_url, node_id, subscribe,
                                                                                 tmp_path):
    from edge_node.agent import contract
    from tests.helpers import Publisher

    sub = subscribe(broker_url, node_id)
    cfg = AgentConfig(node_id=node_id, broker=BrokerConfig(url=broker_url), state_dir=tmp_path,
                      publish_interval_s=0.2, sources=[SourceConfig("centrifugal_pump", "p1", seed=3,
                                                                    sample_interval_s=0.1)])
    agent = Agent(cfg)
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    runner.start()
    try:
        wait_until(lambda: agent.link.connected and agent.stats.samples > 30, 15, what="a warm, connected agent")
        with Publisher(broker_url) as pub:
            pub.publish(contract.topic(node_id, "cmd"), contract.encode(
                {"id": "c1", "type": "inject_fault", "args": {"asset": "p1", "kind": "cavitation", "duration_s": 5}}))
            pub.publish(contract.topic(node_id, "cmd"), contract.encode({"id": "c2", "type": "reboot"}))
        acks = wait_until(lambda: len(sub.of("cmd/ack")) >= 2 and sub.of("cmd/ack"), 5, what="two acks")
        assert {a["id"]: a["ok"] for a in acks} == {"c1": True, "c2": False}
        assert "unsupported command type 'reboot'" in next(a["detail"] for a in acks if a["id"] == "c2")
        event = wait_until(lambda: next((e for e in sub.of("events") if e["kind"] == "anomaly"), None), 5,
                           what="the cavitation anomaly")
        assert event["asset"] == "p1" and event["model_version"] == "ewma-z"
    finally:
        stop.set()
        runner.join(10)


def test_a_graceful_stop_delivers_the_buffer_and_reports_what_was_queued(broker_url, node_id, subscribe, tmp_path):
    sub = subscribe(broker_url, node_id)
    cfg = AgentConfig(node_id=node_id, broker=BrokerConfig(url=broker_url), state_dir=tmp_path, publish_interval_s=1.0,
                      heartbeat_interval_s=5.0, filter=FilterConfig(aggregate_window_s=0.1, deadband_pct=0.0),
                      sources=[SourceConfig("centrifugal_pump", "p1", seed=3, sample_interval_s=0.05)])
    agent = Agent(cfg)
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    runner.start()
    wait_until(lambda: agent.link.connected and agent.stats.batches >= 2, 15, what="a few batches")
    wait_until(lambda: len(agent._pending) >= 3, 5, what="readings waiting for the next batch")
    stop.set()  # those readings are not in the outbox yet: the stop must flush and deliver them
    runner.join(15)
    final = wait_until(lambda: [s for s in sub.of("status") if s["state"] == "offline"], 5, what="the final status")[-1]
    assert final["buffer_depth"] == 0, "SIGTERM delivered the outbox before saying offline"
    received = wait_until(lambda: sum(len(r["values"]) for b in sub.of("telemetry") for r in b["readings"]) or None, 5, what="telemetry")
    wait_until(lambda: sum(len(r["values"]) for b in sub.of("telemetry") for r in b["readings"]) == final["points_queued"], 5,
               what=f"every queued value at the subscriber (got {received}, queued {final['points_queued']})")
    assert final["readings_queued"] == sum(len(b["readings"]) for b in sub.of("telemetry"))
