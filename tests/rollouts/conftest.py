from __future__ import annotations

import threading

import pytest

from tests.rollouts.models_for_tests import write_anomaly_model


@pytest.fixture
def registry_settings(settings, tmp_path):
    """Registry files and the signing key under this test's own VAR_DIR."""
    settings.VAR_DIR = tmp_path / "var"
    settings.MODEL_SIGNING_KEY_FILE = ""
    return settings


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory):
    """v1 (sane), v2 (retrained: agrees with v1), v3 (threshold far too low: flags everything)."""
    root = tmp_path_factory.mktemp("models")
    return {
        "v1": write_anomaly_model(root, "motor-anomaly", "1", seed=1),
        "v2": write_anomaly_model(root, "motor-anomaly", "2", seed=2),
        "v3": write_anomaly_model(root, "motor-anomaly", "3", seed=3, threshold=-10.0),
    }


@pytest.fixture
def second_admin(db):
    """Another admin: the two-person rule needs one to propose and one to approve."""
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(username="admin2", password="pw-admin2")
    user.groups.add(Group.objects.get_or_create(name="admin")[0])
    return user


@pytest.fixture
def listener(mqtt_url, transactional_db):
    """The platform's rollout listener (cmd/ack, status; steps rollouts and keyrings) on a thread."""
    from edge_node.rollouts.listener import RolloutListener
    from edge_node.rollouts.mqtt_client import PlatformMqtt

    client = PlatformMqtt(mqtt_url, subscribe=True).start()
    stop = threading.Event()
    loop = RolloutListener(client, step_interval_s=0.2)

    def run() -> None:
        from django.db import connection

        try:
            loop.run(stop)
        finally:
            connection.close()  # this thread's own connection: else the test database cannot be dropped

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield loop
    stop.set()
    thread.join(timeout=10)
    client.stop()
