"""Whole rollouts: the platform (live HTTP server, the rollout listener over real MQTT) drives
10 simulated nodes (each with its own models dir and the agent's DeployManager) through canary,
promotion or automatic rollback."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import Group, User

from edge_node.agent.deploy_sim import SimDeployFleet
from edge_node.credentials import hash_secret
from edge_node.models import EdgeNode
from edge_node.rollouts import const
from edge_node.rollouts.actions import approve_rollout, propose_rollout
from edge_node.rollouts.models import Rollout, RolloutNode
from edge_node.rollouts.node_api import gauge
from edge_node.rollouts.registry import register_anomaly_model
from edge_node.signing_keys import public_key_pem
from tests.factories import make_site
from tests.helpers import wait_until
from tests.rollouts.agent_helpers import slow_loader

N_NODES = 10
MAX_CONCURRENT = 3


@dataclass
class Platform:
    site: object
    fleet: SimDeployFleet
    proposer: User
    approver: User

    def run(self, model, **gates) -> Rollout:
        rollout = propose_rollout(self.proposer, model, site=self.site, **gates)
        approve_rollout(self.approver, rollout)
        return rollout


def _admin(name: str) -> User:
    user = User.objects.create_user(username=name, password="pw")
    user.groups.add(Group.objects.get_or_create(name="admin")[0])
    return user


def _start(live_server, mqtt_url, settings, tmp_path, unique, seed_model: Path, live_rows=None, offline=()):
    settings.VAR_DIR = tmp_path / "var"
    settings.MODEL_SIGNING_KEY_FILE = ""
    settings.PLATFORM_PUBLIC_URL = live_server.url
    settings.ROLLOUT_MAX_CONCURRENT = MAX_CONCURRENT
    settings.ROLLOUT_JITTER_S = 0.05
    settings.ROLLOUT_STEP_INTERVAL_S = 0.2
    site = make_site()
    secrets = {f"ro-{unique}-{i:02d}": f"secret-{unique}-{i}" for i in range(N_NODES)}
    for i, (node_id, secret) in enumerate(secrets.items()):
        EdgeNode.objects.create(node_id=node_id, site=site, secret_hash=hash_secret(secret), online=i not in offline)
    fleet = SimDeployFleet(mqtt_url, live_server.url, public_key_pem(), secrets, seed_model, tmp_path / "nodes",
                           live_rows=live_rows).start()
    return Platform(site, fleet, _admin("prop"), _admin("appr"))


def _state(rollout: Rollout) -> str:
    return Rollout.objects.get(pk=rollout.pk).state


@pytest.fixture
def platform_factory(live_server, mqtt_url, settings, tmp_path, unique, listener):
    started = []

    def start(seed_model, **kw):
        gauge.reset()
        p = _start(live_server, mqtt_url, settings, tmp_path, unique, seed_model, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        p.fleet.stop()


def test_it_promotes_a_canary_to_every_node(platform_factory, model_dirs):
    p = platform_factory(model_dirs["v1"])
    model = register_anomaly_model(model_dirs["v2"])
    rollout = p.run(model, canary_share=0.2, min_agreement=0.8, max_p99_latency_ms=50.0)
    wait_until(lambda: _state(rollout) == const.DONE, timeout=60, what="rollout done")
    assert set(p.fleet.versions().values()) == {"2"} and set(p.fleet.disk_versions().values()) == {"2"}
    nodes = list(RolloutNode.objects.filter(rollout=rollout))
    assert len(nodes) == N_NODES and {rn.state for rn in nodes} == {const.N_SWITCHED}
    assert all(rn.report["version"] == "2" and rn.report["agreement"] >= 0.8 for rn in nodes)
    canary = [rn for rn in nodes if rn.canary]
    assert len(canary) == 2
    # Promotion starts only after the canary has switched; the pacing held all along.
    assert max(rn.sent_at for rn in canary) < min(rn.sent_at for rn in nodes if not rn.canary)
    assert gauge.total == N_NODES and 1 <= gauge.peak <= MAX_CONCURRENT


def test_it_rolls_every_node_back_when_a_node_disagrees_after_promotion(platform_factory, model_dirs):
    # The canary's live windows are all anomalous (old and new model agree on them); the rest are
    # healthy, where the new model (threshold far too low) disagrees: the gate fails after promotion.
    def rows(i: int) -> np.ndarray:
        return np.random.default_rng(i).normal(8.0 if i < 3 else 0.0, 1.0, (60, 3)).astype(np.float32)

    p = platform_factory(model_dirs["v1"], live_rows=rows)
    model = register_anomaly_model(model_dirs["v3"])
    rollout = p.run(model, canary_share=0.3, min_agreement=0.9)
    wait_until(lambda: _state(rollout) == const.ROLLED_BACK, timeout=60, what="automatic rollback")
    wait_until(lambda: not RolloutNode.objects.filter(rollout=rollout, state__in=(const.N_SWITCHED, *const.IN_FLIGHT_STATES)).exists(),
               timeout=60, what="every switched node rolled back")
    assert set(p.fleet.versions().values()) == {"1"} and set(p.fleet.disk_versions().values()) == {"1"}
    states = dict(RolloutNode.objects.filter(rollout=rollout).values_list("node__node_id", "state"))
    assert [states[n] for n in sorted(states)[:3]] == [const.N_ROLLED_BACK] * 3  # the canary had switched
    failed = RolloutNode.objects.filter(rollout=rollout, state=const.N_FAILED)
    reasons = {rn.reason for rn in failed}
    # Nodes still downloading when the rollout was rolled back are refused the artifact (404).
    assert "agreement_gate" in reasons and reasons <= {"agreement_gate", "download_failed"}
    assert "agreement" in Rollout.objects.get(pk=rollout.pk).reason


def test_it_stops_at_the_canary_when_the_model_is_slower_than_its_gate(platform_factory, model_dirs):
    p = platform_factory(model_dirs["v1"])
    model = register_anomaly_model(model_dirs["v2"])
    rollout = p.run(model, canary_share=0.2, max_p99_latency_ms=0.0001)
    wait_until(lambda: _state(rollout) == const.ROLLED_BACK, timeout=60, what="rollback")
    assert set(p.fleet.versions().values()) == {"1"}
    # The nodes after the canary were never sent the model, and say so (a final state, not "pending").
    rest = RolloutNode.objects.filter(rollout=rollout, canary=False)
    assert rest.exists() and set(rest.values_list("state", flat=True)) == {const.N_NOT_SENT}
    assert "rolled back before this node's turn" in rest.first().detail
    assert "p99" in Rollout.objects.get(pk=rollout.pk).reason


def test_it_rolls_back_when_nodes_refuse_a_tampered_artifact(platform_factory, model_dirs):
    p = platform_factory(model_dirs["v1"])
    model = register_anomaly_model(model_dirs["v2"])
    stored = Path(model.file_path)
    stored.write_bytes(stored.read_bytes()[:-4] + b"evil")  # swapped on the platform's disk after signing
    rollout = p.run(model, canary_share=0.2)
    wait_until(lambda: _state(rollout) == const.ROLLED_BACK, timeout=60, what="rollback")
    refused = RolloutNode.objects.filter(rollout=rollout, state=const.N_FAILED)
    reasons = {rn.reason for rn in refused}
    # A canary node still downloading when the first refusal rolled the rollout back gets a 404.
    assert "hash_mismatch" in reasons and reasons <= {"hash_mismatch", "download_failed"}
    assert all("refused motor-anomaly@2" in rn.detail and "sha256" in rn.detail for rn in refused if rn.reason == "hash_mismatch")
    assert set(p.fleet.versions().values()) == {"1"}
    assert not any((node.models_dir / "motor-anomaly" / "2").exists() for node in p.fleet.nodes.values())


def test_it_sends_to_an_offline_node_when_it_comes_back(platform_factory, model_dirs):
    p = platform_factory(model_dirs["v1"], offline=(9,))
    model = register_anomaly_model(model_dirs["v2"])
    rollout = p.run(model, canary_share=0.2)
    late = sorted(p.fleet.nodes)[9]
    wait_until(lambda: RolloutNode.objects.filter(rollout=rollout, state=const.N_SWITCHED).count() == N_NODES - 1,
               timeout=60, what="online nodes switched")
    assert RolloutNode.objects.get(rollout=rollout, node__node_id=late).state == const.N_OFFLINE
    assert _state(rollout) == const.PROMOTING and p.fleet.versions()[late] == "1"
    p.fleet.publish_status(late, "online")
    wait_until(lambda: _state(rollout) == const.DONE, timeout=30, what="rollout done after the node returned")
    assert p.fleet.versions()[late] == "2"


def test_it_rolls_a_finished_rollout_back_on_an_admins_request(platform_factory, model_dirs):
    from edge_node.rollouts.actions import rollback_rollout

    p = platform_factory(model_dirs["v1"])
    rollout = p.run(register_anomaly_model(model_dirs["v2"]), canary_share=0.2)
    wait_until(lambda: _state(rollout) == const.DONE, timeout=60, what="rollout done")
    rollback_rollout(p.approver, Rollout.objects.get(pk=rollout.pk), reason="operator saw false alarms")
    wait_until(lambda: set(p.fleet.versions().values()) == {"1"}, timeout=30, what="every node back on version 1")
    assert set(p.fleet.disk_versions().values()) == {"1"}
    wait_until(lambda: set(RolloutNode.objects.filter(rollout=rollout).values_list("state", flat=True)) == {const.N_ROLLED_BACK},
               timeout=10, what="every node reported rolled back")
    assert Rollout.objects.get(pk=rollout.pk).reason == "operator saw false alarms"


def test_one_slow_node_does_not_roll_back_a_healthy_fleet(platform_factory, model_dirs, settings):
    settings.ROLLOUT_GATE_MAX_FAILED_SHARE = 0.1
    p = platform_factory(model_dirs["v1"])
    slow = sorted(p.fleet.nodes)[-1]  # not in the canary
    p.fleet.nodes[slow].manager.loader = slow_loader("2", 0.003, base=p.fleet.loader)
    rollout = p.run(register_anomaly_model(model_dirs["v2"]), canary_share=0.2, max_p99_latency_ms=50.0)
    wait_until(lambda: _state(rollout) == const.DONE, timeout=60, what="rollout done despite one slow node")
    failed = RolloutNode.objects.get(rollout=rollout, node__node_id=slow)
    assert failed.state == const.N_FAILED and failed.reason == "latency_gate" and failed.report["remeasured"] is True
    assert p.fleet.versions()[slow] == "1"  # it kept its model
    assert {v for n, v in p.fleet.versions().items() if n != slow} == {"2"}


def test_a_truly_slow_model_is_rolled_back_within_the_canary(platform_factory, model_dirs):
    p = platform_factory(model_dirs["v1"])
    for node in p.fleet.nodes.values():
        node.manager.loader = slow_loader("2", 0.003, base=p.fleet.loader)
    rollout = p.run(register_anomaly_model(model_dirs["v2"]), canary_share=0.3, max_p99_latency_ms=50.0)
    wait_until(lambda: _state(rollout) == const.ROLLED_BACK, timeout=60, what="rollback")
    assert set(p.fleet.versions().values()) == {"1"}
    assert set(RolloutNode.objects.filter(rollout=rollout, canary=False).values_list("state", flat=True)) == {const.N_NOT_SENT}
    assert "x the current model" in Rollout.objects.get(pk=rollout.pk).reason
