"""Backup and restore (deploy/BACKUP.md): a dump restored into a NEW database and a NEW folder
finds the platform whole -- the gateway still authenticates (HTTP secret, and MQTT at a real
Mosquitto reading the restored broker files), the models still verify, the twin resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import paho.mqtt.client as mqtt
import psycopg
import pytest

from tests.conftest import _missing
from tests.helpers import ROOT, free_port, wait_until

pytestmark = pytest.mark.timeout(300)


def pg_server() -> str:
    parts = urlsplit(os.environ.get("DATABASE_URL", ""))
    if parts.scheme not in ("postgres", "postgresql"):
        _missing("needs PostgreSQL: set DATABASE_URL=postgres://postgres@127.0.0.1/test")
    for tool in ("pg_dump", "pg_restore", "mosquitto"):
        if shutil.which(tool) is None:
            _missing(f"needs {tool}")
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


@pytest.fixture
def databases():
    server = pg_server()
    names = [f"bk_{role}_{uuid.uuid4().hex[:8]}" for role in ("src", "dst")]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    yield [f"{server}/{name}" for name in names]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def site_env(database_url: str, folder: Path) -> dict[str, str]:
    """One installation: its database, its folder, its broker files (MQTT services' passwords as any site's)."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AIOT_", "MQTT_", "REDIS_", "DATABASE_", "MODEL_", "SECRET_"))}
    return {**keep, "DATABASE_URL": database_url, "AIOT_VAR_DIR": str(folder / "var"), "MQTT_URL": "mqtt://127.0.0.1:1",
            "MQTT_INGEST_PASSWORD": "ingest-pw", "MQTT_PLATFORM_PASSWORD": "platform-pw",
            "MQTT_PASSWORD_FILE": str(folder / "broker" / "passwd"), "MQTT_ACL_FILE": str(folder / "broker" / "acl"),
            "MODEL_SIGNING_KEY_FILE": str(folder / "keys" / "model-signing.pem"), "TWIN_TRAIN_DEMO_MODELS": "0"}


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def mqtt_connects(port: int, username: str, password: str) -> bool:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=username)
    client.username_pw_set(username, password)
    codes: list[object] = []
    client.on_connect = lambda c, u, f, rc, p=None: codes.append(rc)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_until(lambda: codes, 10, what="a CONNACK")
    finally:
        client.disconnect()
        client.loop_stop()
    return not codes[0].is_failure  # type: ignore[attr-defined]


def test_a_restore_into_a_new_database_and_folder_finds_the_platform_whole(databases, tmp_path):
    src_url, dst_url = databases
    src, dst = tmp_path / "site-a", tmp_path / "site-b"
    src_env, dst_env = site_env(src_url, src), site_env(dst_url, dst)
    manage(src_env, "migrate", "--noinput")
    manage(src_env, "signing_key")
    built = manage(src_env, "shell", "-c", f"from tests.deploy.backup_scenario import build; build({str(tmp_path)!r})")
    backup = tmp_path / "backup"
    assert "backup of" in manage(src_env, "backup", "--out", str(backup))
    assert sorted(p.name for p in backup.iterdir()) == ["database.dump", "files.tar.gz", "manifest.json"]
    shutil.rmtree(src)  # the old host is gone: the backup alone must do

    report = json.loads(manage(dst_env, "restore", "--from", str(backup)))
    assert report["models_verified"] == 1 and report["rul_models_loaded"] == 1 and report["nodes"] == 1
    assert "1 node account(s) written" in report["broker_files"]
    manage(dst_env, "migrate", "--noinput")  # the runbook's next step: a no-op for the same release
    again = subprocess.run([sys.executable, "manage.py", "restore", "--from", str(backup)], cwd=ROOT, env=dst_env, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode != 0 and "is not empty: restore into a new, empty database" in again.stderr
    found = json.loads(manage(dst_env, "shell", "-c", f"from tests.deploy.backup_scenario import check; check({built!r})"))
    assert found["node_authenticates"] and found["wrong_secret_refused"] and found["mqtt_password_verifies"]
    assert found["models_verify"] and found["models_verify_with_the_gateways_pinned_key"]
    assert found["rotated_key_signs"], "the rotated signing key (in the database only) signs on the new host"
    assert found["artifact_under_new_folder"].startswith(str(dst)), "the restored artifact is read from the new folder"
    assert found["twin_kept"] and found["twin_resumed"]
    before, after = found["latest_before_after"]
    assert after and after != before, "the resumed twin reads the telemetry written after the restore"
    assert found["rul_before_after"][1] != found["rul_before_after"][0]

    # The gateway logs in to a real Mosquitto that reads the restored site's broker files.
    built_data = json.loads(built)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"per_listener_settings true\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {dst}/broker/passwd\n"
                    f"acl_file {dst}/broker/acl\nlog_dest none\n{'user root' if os.geteuid() == 0 else ''}\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _listening(port), 10, what="mosquitto")
        assert mqtt_connects(port, built_data["node_id"], built_data["mqtt_password"])
        assert not mqtt_connects(port, built_data["node_id"], "wrong-password")
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(10)


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
