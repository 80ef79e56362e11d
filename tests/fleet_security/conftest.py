from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_until

MOSQUITTO = "/usr/sbin/mosquitto"


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


@dataclass
class Mosquitto:
    port: int  # the nodes' listener: client id forced to the username
    service_port: int  # the ingest's and platform's listener (an internal interface in production)
    pid_file: Path
    process: subprocess.Popen
    log: Path


def mosquitto_conf(files: Path, node_port: int, service_port: int) -> str:
    """The production layout (see the report / deploy/mosquitto): two listeners sharing the
    platform's password and ACL files; on the nodes' one the client id is the username, so a
    node cannot take over another client's session by borrowing its client id."""
    auth = f"allow_anonymous false\npassword_file {files / 'passwd'}\nacl_file {files / 'acl'}\n"
    return (
        f"per_listener_settings true\nuser root\npid_file {files / 'mosquitto.pid'}\npersistence false\n"
        f"log_dest file {files / 'mosquitto.log'}\nlog_type all\n"
        f"listener {node_port} 127.0.0.1\n{auth}use_username_as_clientid true\n"
        f"listener {service_port} 127.0.0.1\n{auth}"
    )


@pytest.fixture
def mosquitto(settings, tmp_path):
    """A private Mosquitto on free ports, using the files the platform writes (never the system one)."""
    if not Path(MOSQUITTO).exists():
        if os.environ.get("AIOT_REQUIRE_SERVICES") == "1":
            pytest.fail(f"required service missing: {MOSQUITTO}", pytrace=False)
        pytest.skip(f"needs the mosquitto binary at {MOSQUITTO}")
    files = tmp_path / "mosquitto"
    files.mkdir()
    settings.MQTT_PASSWORD_FILE = str(files / "passwd")
    settings.MQTT_ACL_FILE = str(files / "acl")
    settings.MOSQUITTO_PID_FILE = str(files / "mosquitto.pid")
    from edge_node.services import write_broker_files

    write_broker_files(reload=False)
    port, service_port = free_port(), free_port()
    while service_port == port:
        service_port = free_port()
    conf = files / "mosquitto.conf"
    conf.write_text(mosquitto_conf(files, port, service_port))
    with open(files / "stdout.log", "wb") as out:
        process = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: process.poll() is not None or ((files / "mosquitto.pid").exists() and _listening(port) and _listening(service_port)),
                   timeout=10, what="mosquitto to listen")
        assert process.poll() is None, (files / "stdout.log").read_text() + (files / "mosquitto.log").read_text()
        yield Mosquitto(port, service_port, files / "mosquitto.pid", process, files / "mosquitto.log")
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
