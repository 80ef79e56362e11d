"""A real edge Agent (agent.py) takes a deploy command from its cmd topic over MQTT: it shadows
the new model on its own live windows, switches its running slot and reports on cmd/ack."""

from __future__ import annotations

import shutil
import threading
import uuid

import pytest

from edge_node.agent import contract
from edge_node.agent.agent import Agent
from edge_node.agent.config import (
    AgentConfig,
    BrokerConfig,
    PlatformConfig,
    SourceConfig,
)
from edge_node.agent.models import current_version, set_current
from tests.agent.conftest import Subscriber
from tests.helpers import Publisher, wait_until
from tests.rollouts.agent_helpers import ArtifactServer, Signer, deploy_args


@pytest.fixture
def node_id() -> str:
    return f"t-deploy-{uuid.uuid4().hex[:10]}"


def test_it_deploys_into_a_running_agent_over_mqtt(mqtt_url, node_id, tmp_path, model_dirs):
    signer = Signer()
    models_dir = tmp_path / "models"
    shutil.copytree(model_dirs["v1"], models_dir / "motor-anomaly" / "1")
    set_current(models_dir, "motor-anomaly", "1")
    with ArtifactServer({node_id: "s3cret"}) as server:
        cfg = AgentConfig(node_id=node_id, broker=BrokerConfig(url=mqtt_url), state_dir=tmp_path, models_dir=models_dir,
                          publish_interval_s=0.2,
                          sources=[SourceConfig("induction_motor", "m1", seed=1, sample_interval_s=0.05, model="motor-anomaly")],
                          platform=PlatformConfig(url=server.url, node_secret="s3cret", model_public_key=signer.public_pem))
        agent = Agent(cfg)
        sub = Subscriber(mqtt_url, node_id)
        stop = threading.Event()
        runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        runner.start()
        try:
            wait_until(lambda: agent.link.connected and agent.stats.samples > 25 and sub.subscribed.is_set(), 15, what="a warm agent")
            args = deploy_args(server, signer, model_dirs["v2"], gates={"max_p99_latency_ms": 50.0})
            with Publisher(mqtt_url) as pub:
                pub.publish(contract.topic(node_id, "cmd"), contract.encode({"id": "d1", "type": "deploy", "args": args}))
            final = wait_until(lambda: next((a for a in sub.of("cmd/ack") if a["report"].get("final")), None), 20, what="final ack")
            assert final["ok"] and final["report"]["stage"] == "switched", final
            assert final["report"]["windows"] >= 20  # shadowed on the agent's own live windows
            assert [a["report"]["stage"] for a in sub.of("cmd/ack")] == ["downloading", "verifying", "shadow", "switched"]
            assert agent.model_versions() == {"motor-anomaly": "2"} and current_version(models_dir, "motor-anomaly") == "2"
        finally:
            stop.set()
            runner.join(10)
            sub.close()


def test_it_switches_only_the_commanded_agent_of_a_fleet_sharing_models(tmp_path, model_dirs):
    from edge_node.agent.models import ModelSlot

    signer = Signer()
    cache: dict[str, ModelSlot] = {}
    agents = []
    with ArtifactServer({"a1": "s1", "a2": "s2"}) as server:
        for node, secret in (("a1", "s1"), ("a2", "s2")):
            models_dir = tmp_path / node
            shutil.copytree(model_dirs["v1"], models_dir / "motor-anomaly" / "1")
            set_current(models_dir, "motor-anomaly", "1")
            cfg = AgentConfig(node_id=node, state_dir=tmp_path / f"state-{node}", models_dir=models_dir,
                              sources=[SourceConfig("induction_motor", "m1", seed=1, model="motor-anomaly")],
                              platform=PlatformConfig(url=server.url, node_secret=secret, model_public_key=signer.public_pem))
            agents.append(Agent(cfg, model_cache=cache))
        agents[0].deploy.deploy("d1", deploy_args(server, signer, model_dirs["v2"]), None)
    assert agents[0].model_versions() == {"motor-anomaly": "2"}
    assert agents[1].model_versions() == {"motor-anomaly": "1"}
    for agent in agents:
        agent.outbox.close()
