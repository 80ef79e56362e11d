from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_var_dir(settings, tmp_path):
    """Each test its own VAR_DIR (signing key) and no Mosquitto files unless it asks."""
    settings.VAR_DIR = tmp_path / "var"
    settings.MODEL_SIGNING_KEY_FILE = ""
    settings.MQTT_PASSWORD_FILE = ""
    settings.MQTT_ACL_FILE = ""
    settings.MOSQUITTO_PID_FILE = ""
    settings.MOSQUITTO_RELOAD_CMD = ""
    settings.MQTT_INGEST_USERNAME = "aiot-ingest"
    settings.MQTT_INGEST_PASSWORD = "ingest-test-password"
    settings.MQTT_PLATFORM_USERNAME = "aiot-platform"
    settings.MQTT_PLATFORM_PASSWORD = "platform-test-password"
    settings.MQTT_NODE_BROKER_URL = "mqtts://broker.example.com:8883"
