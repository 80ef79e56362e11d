"""Least privilege on a REAL Mosquitto, started by the test with the files the platform writes."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge_node.agent.contract import topic
from edge_node.credentials import mosquitto_hash, verify_mosquitto_hash
from edge_node.services import create_enrollment_token, enroll_node, revoke_node
from tests.factories import make_site
from tests.fleet_security.mqtt_clients import accepted, connect
from tests.helpers import wait_until

# Transactional: revocation and enrollment touch the broker only after their commit.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.mqtt]
REFUSED = 128


def enrolled(site, node_id):
    _, plaintext = create_enrollment_token(site, node_id=node_id)
    return enroll_node(plaintext, remote_addr="127.0.0.1")


@pytest.fixture
def two_nodes(transactional_db):
    site = make_site()
    u = uuid.uuid4().hex[:6]
    return enrolled(site, f"gw-a-{u}"), enrolled(site, f"gw-b-{u}")


def test_it_matches_mosquitto_passwd_hashes(tmp_path):
    pw_file = tmp_path / "pw"
    subprocess.run(["/usr/bin/mosquitto_passwd", "-b", "-c", str(pw_file), "someone", "s3cret-pw"], check=True, capture_output=True)
    _, encoded = pw_file.read_text().strip().split(":", 1)
    assert encoded.startswith("$7$")
    assert verify_mosquitto_hash("s3cret-pw", encoded)
    assert not verify_mosquitto_hash("s3cret-px", encoded)
    # ...and ours has mosquitto_passwd's shape: $7$101$<16 b64 chars salt>$<88 b64 chars hash>.
    ours = mosquitto_hash("s3cret-pw").split("$")
    theirs = encoded.split("$")
    assert [len(p) for p in ours] == [len(p) for p in theirs]


def test_it_delivers_a_nodes_own_telemetry(two_nodes, mosquitto, settings):
    a, _ = two_nodes
    platform = connect(mosquitto.service_port, settings.MQTT_PLATFORM_USERNAME, settings.MQTT_PLATFORM_PASSWORD)
    ingest = connect(mosquitto.service_port, settings.MQTT_INGEST_USERNAME, settings.MQTT_INGEST_PASSWORD)
    node = connect(mosquitto.port, a.mqtt_username, a.mqtt_password)
    try:
        assert accepted(platform) and accepted(ingest) and accepted(node)
        assert platform.subscribe("aiot/v1/+/telemetry") == 1
        assert ingest.subscribe("aiot/v1/+/telemetry") == 1
        node.publish(topic(a.node.node_id, "telemetry"), b'{"seq": 1, "readings": []}')
        assert platform.received() == (topic(a.node.node_id, "telemetry"), b'{"seq": 1, "readings": []}')
        assert ingest.received()[0] == topic(a.node.node_id, "telemetry")
    finally:
        for s in (platform, ingest, node):
            s.close()


def test_it_drops_what_a_node_publishes_in_another_nodes_name(two_nodes, mosquitto, settings):
    a, b = two_nodes
    ingest = connect(mosquitto.service_port, settings.MQTT_INGEST_USERNAME, settings.MQTT_INGEST_PASSWORD)
    node = connect(mosquitto.port, a.mqtt_username, a.mqtt_password)
    try:
        # Mosquitto grants a wide subscription but checks every message against the read ACL.
        ingest.subscribe("aiot/v1/#")
        node.publish(topic(b.node.node_id, "telemetry"), b"impostor")
        node.publish("aiot/v1/elsewhere", b"outside the contract")
        node.publish(topic(a.node.node_id, "cmd/ack"), b"ack: not the ingest's to read")
        node.publish(topic(a.node.node_id, "telemetry"), b"own")
        # Messages of one publisher arrive in order: the first to arrive must be its own telemetry.
        assert ingest.received() == (topic(a.node.node_id, "telemetry"), b"own")
        assert ingest.messages.empty()
    finally:
        ingest.close()
        node.close()


def test_it_lets_a_node_read_only_its_own_commands(two_nodes, mosquitto, settings):
    a, b = two_nodes
    node = connect(mosquitto.port, a.mqtt_username, a.mqtt_password)
    platform = connect(mosquitto.service_port, settings.MQTT_PLATFORM_USERNAME, settings.MQTT_PLATFORM_PASSWORD)
    try:
        # Mosquitto 2.0 grants these SUBACKs but checks the read ACL on every message it delivers.
        node.subscribe(topic(b.node.node_id, "cmd"))
        node.subscribe("aiot/v1/+/cmd")
        assert node.subscribe(topic(a.node.node_id, "cmd")) == 1
        assert platform.subscribe("aiot/v1/+/cmd/ack") == 1
        platform.publish(topic(b.node.node_id, "cmd"), b"for b")
        platform.publish(topic(a.node.node_id, "cmd"), b"for a")
        assert node.received() == (topic(a.node.node_id, "cmd"), b"for a")
        # A node cannot send commands to a node (nor to itself).
        node.publish(topic(a.node.node_id, "cmd"), b"self-made command")
        node.publish(topic(a.node.node_id, "cmd/ack"), b"done")
        assert platform.received() == (topic(a.node.node_id, "cmd/ack"), b"done")
        assert node.messages.empty()
    finally:
        node.close()
        platform.close()


def test_it_lets_ingest_workers_share_the_stream(two_nodes, mosquitto, settings):
    a, _ = two_nodes
    ingest = connect(mosquitto.service_port, settings.MQTT_INGEST_USERNAME, settings.MQTT_INGEST_PASSWORD, protocol=mqtt.MQTTv5)
    node = connect(mosquitto.port, a.mqtt_username, a.mqtt_password)
    try:
        assert ingest.subscribe("$share/ingest/aiot/v1/+/telemetry") == 1
        node.publish(topic(a.node.node_id, "telemetry"), b"shared")
        assert ingest.received() == (topic(a.node.node_id, "telemetry"), b"shared")
    finally:
        ingest.close()
        node.close()


def test_it_refuses_a_wrong_password_and_unknown_users(two_nodes, mosquitto):
    a, _ = two_nodes
    for username, password in ((a.mqtt_username, a.mqtt_password + "x"), ("nobody", "pw"), (None, None)):
        session = connect(mosquitto.port, username, password)
        assert not accepted(session)
        assert session.connack and str(session.connack[0]) == "Not authorized"  # CONNACK 5 (3.1.1)


def test_it_disconnects_and_refuses_a_revoked_node(two_nodes, mosquitto, settings):
    a, _ = two_nodes
    node = connect(mosquitto.port, a.mqtt_username, a.mqtt_password)
    assert accepted(node)

    note = revoke_node(a.node, actor="test")

    assert "SIGHUP" in note
    # Mosquitto re-checks connected clients on reload: the revoked node is dropped at once.
    wait_until(node.disconnected.is_set, timeout=5, what="the revoked node to be disconnected")
    node.client.loop_stop()
    again = wait_until(lambda: (s := connect(mosquitto.port, a.mqtt_username, a.mqtt_password)) and not accepted(s) and s, timeout=5, what="reconnect refused")
    assert str(again.connack[0]) == "Not authorized"
    password_file = Path(settings.MQTT_PASSWORD_FILE).read_text()
    assert a.node.node_id not in password_file and "aiot-ingest:" in password_file


def test_it_lets_a_node_enrolled_while_the_broker_runs_connect(mosquitto, settings):
    result = enrolled(make_site(), f"gw-new-{uuid.uuid4().hex[:6]}")
    # The enrollment rewrote the files and sent SIGHUP; the reload is asynchronous.
    session = wait_until(lambda: (s := connect(mosquitto.port, result.mqtt_username, result.mqtt_password)) and accepted(s) and s, timeout=5, what="the new node to be accepted")
    session.close()


def test_it_keeps_a_node_from_taking_over_another_clients_session(two_nodes, mosquitto, settings):
    a, b = two_nodes
    ingest = connect(mosquitto.service_port, settings.MQTT_INGEST_USERNAME, settings.MQTT_INGEST_PASSWORD, client_id="aiot-ingest-host-solo-1")
    victim = connect(mosquitto.port, b.mqtt_username, b.mqtt_password, client_id=b.node.node_id)
    try:
        thief_1 = connect(mosquitto.port, a.mqtt_username, a.mqtt_password, client_id=b.node.node_id)
        thief_2 = connect(mosquitto.port, a.mqtt_username, a.mqtt_password, client_id="aiot-ingest-host-solo-1")
        # Accepted, but under its own name: the thieves end each other's session, never the others'.
        assert accepted(thief_1) and accepted(thief_2)
        wait_until(thief_1.disconnected.is_set, timeout=5, what="the second connection of a to replace the first")
        assert not victim.disconnected.is_set() and not ingest.disconnected.is_set()
        thief_2.close()
    finally:
        victim.close()
        ingest.close()
