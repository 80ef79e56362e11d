"""The simulated fleet in a child process (what bench/rollout.py runs 5,000 nodes in): it starts
its nodes on the seed model, takes a real deploy command over the broker, and reports what
each node runs."""

from __future__ import annotations

from urllib.parse import urlsplit

import paho.mqtt.publish as publish
import pytest

from edge_node.agent import contract
from edge_node.agent.deploy_sim import FleetProcess
from edge_node.signing_keys import public_key_pem, sign_command
from tests.agent.conftest import Subscriber
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db  # the platform's active signing key is read from the database


def test_it_runs_nodes_in_a_child_process_and_reports_their_versions(registry_settings, model_dirs, mqtt_url, unique, tmp_path):
    secrets = {f"fp-{unique}-{i}": f"secret-{i}" for i in range(3)}
    fleet = FleetProcess(mqtt_url, "http://127.0.0.1:9", public_key_pem(), secrets, model_dirs["v1"], tmp_path / "nodes", workers=2)
    fleet.start()
    acks = Subscriber(mqtt_url, next(iter(secrets)))
    try:
        assert fleet.process.is_alive() and fleet.process.pid is not None
        assert fleet.summary() == {"versions": {"1": 3}, "busy": 0}
        assert fleet.versions() == dict.fromkeys(secrets, "1") == fleet.disk_versions()
        # A rollback of a version it does not run: the node answers from the child, over the broker.
        wait_until(acks.subscribed.is_set, 10, what="ack subscriber")
        node = next(iter(secrets))
        parts = urlsplit(mqtt_url)
        command = sign_command(node, {"id": f"c-{unique}", "type": "rollback", "args": {"name": "motor-anomaly", "version": "9"}})
        publish.single(contract.topic(node, "cmd"), contract.encode(command), qos=1, hostname=parts.hostname, port=parts.port or 1883)
        ack = wait_until(lambda: acks.of("cmd/ack"), 15, what="the child's ack")[0]
        assert ack["id"] == f"c-{unique}" and ack["report"]["final"] and ack["report"]["version"] == "1"
    finally:
        acks.close()
        fleet.stop()
    assert not fleet.process.is_alive()
