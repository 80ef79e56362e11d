from __future__ import annotations

import shutil
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
    port: int
    pid_file: Path
    process: subprocess.Popen
    log: Path


@pytest.fixture
def mosquitto(settings, tmp_path):
    """A private Mosquitto on a free port, using the files the platform writes (never the system one)."""
    if not Path(MOSQUITTO).exists() and not shutil.which("mosquitto"):
        pytest.skip("needs the mosquitto binary")
    files = tmp_path / "mosquitto"
    files.mkdir()
    settings.MQTT_PASSWORD_FILE = str(files / "passwd")
    settings.MQTT_ACL_FILE = str(files / "acl")
    settings.MOSQUITTO_PID_FILE = str(files / "mosquitto.pid")
    from edge_node.services import write_broker_files

    write_broker_files(reload=False)
    port = free_port()
    conf = files / "mosquitto.conf"
    log = files / "mosquitto.log"
    conf.write_text(
        f"user root\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {files / 'passwd'}\n"
        f"acl_file {files / 'acl'}\npid_file {files / 'mosquitto.pid'}\npersistence false\n"
        f"log_dest file {log}\nlog_type all\n"
    )
    with open(files / "stdout.log", "wb") as out:
        process = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: (files / "mosquitto.pid").exists() and process.poll() is None and _listening(port), timeout=10, what="mosquitto to listen")
        yield Mosquitto(port, files / "mosquitto.pid", process, log)
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
