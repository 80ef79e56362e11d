from __future__ import annotations

from pathlib import Path

from edge_node.agent import contract
from edge_node.agent.agent import Agent
from edge_node.agent.config import (
    AgentConfig,
    BrokerConfig,
    FaultConfig,
    FilterConfig,
    MetricFilter,
    SourceConfig,
)
from edge_node.agent.filtering import ReadingFilter


def test_a_deadband_suppresses_a_steady_signal_but_passes_a_step():
    f = ReadingFilter(FilterConfig(metrics={"t": MetricFilter(deadband=0.5)}, max_silence_s=1e9))
    sent = [f.add("a", float(i), {"t": 20.0 + (0.1 if i % 2 else 0.0)}) for i in range(100)]
    assert sum(1 for s in sent if s) == 1  # only the first value
    assert f.add("a", 100.0, {"t": 25.0}) == {"t": 25.0}


def test_a_steady_signal_is_still_sent_after_max_silence():
    f = ReadingFilter(FilterConfig(deadband_pct=5.0, max_silence_s=30.0))
    sent = [i for i in range(100) if f.add("a", float(i), {"t": 20.0})]
    assert sent == [0, 30, 60, 90]


def test_windowed_aggregates_send_one_value_per_window():
    f = ReadingFilter(FilterConfig(metrics={"v": MetricFilter(window_s=10.0, aggregate="max"),
                                            "m": MetricFilter(window_s=10.0, aggregate="mean")}))
    out = [f.add("a", float(i), {"v": float(i % 10), "m": float(i)}) for i in range(31)]
    sent = [(i, o) for i, o in enumerate(out) if o]
    # the first value at once, then each window closes on the first sample 10 s after it opened
    assert [i for i, _ in sent] == [0, 11, 22]
    assert sent[1][1] == {"v": 9.0, "m": 6.0}  # max of 1..9,0,1 and mean of 1..11


def offline_agent(tmp_path: Path, *, faults=(), **filter_kwargs) -> Agent:
    cfg = AgentConfig(
        node_id="t-offline", broker=BrokerConfig(url="mqtt://127.0.0.1:9"), state_dir=tmp_path,
        sources=[SourceConfig(plugin="hvac_unit", asset="ahu", seed=1, sample_interval_s=1.0, faults=list(faults))],
        filter=FilterConfig(**filter_kwargs),
    )
    return Agent(cfg, t0=1_000_000.0)


def outbox_messages(agent: Agent, channel: str) -> list[dict]:
    return [contract.decode(r.payload) for r in agent.outbox.peek(0, 100_000) if r.channel == channel]


def test_the_agent_sends_steady_signals_rarely_and_an_anomaly_at_once(tmp_path):
    # A fan failure at sim second 200 of a night-time HVAC unit (nobody in, signals steady).
    agent = offline_agent(tmp_path, faults=[FaultConfig(at_s=200.0, kind="fan_failure", duration_s=1000.0)],
                          deadband_pct=2.0, aggregate_window_s=10.0, max_silence_s=300.0)
    agent.assets["ahu"].source.params["start_hour"] = 2.0
    t0 = agent.t0
    for i in range(200):
        agent.tick(t0 + i)
    readings = [r for b in outbox_messages(agent, "telemetry") for r in b["readings"]]
    values_sent = sum(len(r["values"]) for r in readings)
    assert values_sent < 0.1 * 200 * 6  # < 10% of the raw values
    assert outbox_messages(agent, "events") == []
    agent.tick(t0 + 200)  # the fault's first sample
    events = outbox_messages(agent, "events")
    assert len(events) == 1 and events[0]["kind"] == "anomaly" and events[0]["asset"] == "ahu"
    assert events[0]["ts"] == t0 + 200
    # ...and the full reading went out in the same tick, bypassing the deadband
    last = outbox_messages(agent, "telemetry")[-1]["readings"][-1]
    assert last["ts"] == t0 + 200 and len(last["values"]) == 6
    agent.outbox.close()


def test_msgpack_payloads_decode_with_the_contract(tmp_path):
    agent = offline_agent(tmp_path)
    agent.cfg.payload_format = "msgpack"
    for i in range(3):
        agent.tick(agent.t0 + i)
    rows = agent.outbox.peek(0, 10)
    assert rows and all(r.payload[:1] != b"{" for r in rows)
    batch = contract.decode(rows[0].payload)
    assert batch["seq"] == 1 and batch["readings"][0]["asset"] == "ahu"
    agent.outbox.close()


def test_a_fleet_refuses_bad_specs_before_connecting(tmp_path):
    import pytest

    from edge_node.agent.config import ConfigError
    from edge_node.agent.fleet import AssetSpec, Fleet, NodeSpec

    with pytest.raises(ConfigError, match="unknown asset type 'lathe'"):
        Fleet([NodeSpec("n1", assets=[AssetSpec("a", "lathe")])], "mqtt://127.0.0.1:9", tmp_path)
    with pytest.raises(ConfigError, match="not valid for MQTT topics"):
        Fleet([NodeSpec("site 1/gw", assets=[])], "mqtt://127.0.0.1:9", tmp_path)
    with pytest.raises(ConfigError, match="unknown parameter"):
        Fleet([NodeSpec("n1", assets=[AssetSpec("a", "hvac_unit", params={"colour": 1})])], "mqtt://127.0.0.1:9",
              tmp_path)
