"""The agent's payloads pass the platform's own validator (ingest.payloads) untouched."""

from __future__ import annotations

import time

import pytest

from edge_node.agent import contract
from edge_node.agent.agent import Agent
from edge_node.agent.asset_types import ASSET_TYPES
from edge_node.agent.config import AgentConfig, BrokerConfig, FaultConfig, SourceConfig
from ingest import payloads

SOURCES = [
    SourceConfig("induction_motor", "m1", seed=1, fail_at_s=200.0,
                 faults=[FaultConfig(at_s=50.0, kind="bearing_impact", duration_s=20.0)]),
    SourceConfig("centrifugal_pump", "p1", seed=2, faults=[FaultConfig(at_s=60.0, kind="cavitation")]),
    SourceConfig("hvac_unit", "h1", seed=3, faults=[FaultConfig(at_s=70.0, kind="compressor_trip")]),
    SourceConfig("turbofan", "e1", seed=4, faults=[FaultConfig(at_s=80.0, kind="sensor_spike")]),
]


def registry_for(node: str) -> object:
    reg = payloads.Registry()
    reg.nodes[node] = payloads.NodeInfo(1, 1, False)
    for i, sc in enumerate(SOURCES):
        asset_type = "turbofan" if sc.plugin == "turbofan" else sc.plugin
        metrics = {m.name: payloads.MetricInfo(100 * i + j, m.min_value, m.max_value)
                   for j, m in enumerate(ASSET_TYPES[asset_type]["metrics"])}
        reg.assets[sc.asset] = payloads.AssetInfo(i + 1, 1, node, metrics)
    return reg


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_every_message_the_agent_sends_is_accepted_by_the_ingest(tmp_path, fmt):
    node = "t-contract"
    now = time.time()
    cfg = AgentConfig(node_id=node, broker=BrokerConfig(url="mqtt://127.0.0.1:9"), state_dir=tmp_path,
                      sources=SOURCES, payload_format=fmt, publish_interval_s=5.0)
    # Long enough for each fault's anomaly and its all-clear (after CLEAR_AFTER_S of normal samples).
    agent = Agent(cfg, t0=now - 700)
    for s in range(700):
        agent.tick(now - 700 + s)
    agent._pending += [{"asset": "m1", "ts": now, "values": {"vib_rms": 1.0}}] * 3000  # one oversized batch
    agent._flush_batch()
    rows = agent.outbox.peek(0, 100_000)
    reg = registry_for(node)
    readings = events = 0
    for row in rows:
        assert len(row.payload) <= 256 * 1024
        parsed = payloads.parse_message(contract.topic(node, row.channel), row.payload, reg, now + 1)
        assert parsed.rejects == [], parsed.rejects
        assert parsed.seq == row.seq
        readings += len(parsed.rows)
        events += len(parsed.events)
    assert readings > 300 * 4 and events >= 4
    status = agent._encode(agent._status("online", now))
    assert payloads.parse_message(contract.topic(node, "status"), status, reg, now).rejects == []
    agent.outbox.close()
