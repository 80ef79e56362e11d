"""Configuration from the environment: production refuses unsafe settings, bad values are named."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import ROOT


def check(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "AIOT_PRODUCTION")}
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60)


def test_it_refuses_production_with_debug_on():
    result = check({"AIOT_PRODUCTION": "1", "DEBUG": "1", "SECRET_KEY": "x" * 40, "ALLOWED_HOSTS": "aiot.example.com"})
    assert result.returncode != 0 and "refuses DEBUG=1" in result.stderr


def test_it_refuses_production_with_the_default_secret():
    result = check({"AIOT_PRODUCTION": "1", "ALLOWED_HOSTS": "aiot.example.com"})
    assert result.returncode != 0 and "needs SECRET_KEY" in result.stderr


PRODUCTION_SERVICES = {
    "DATABASE_URL": "postgres://aiot@db.example:5432/aiot",
    "REDIS_URL": "redis://redis.example:6379/0",
    "MQTT_URL": "mqtts://aiot-ingest:pw@broker.example:8884",
}


def test_it_starts_in_production_with_a_real_secret_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("k7Qp2-vX9mZ4_tR8wLs3Nf6Yh1Jc5Bd0GeUaOiPx\n")
    result = check({"AIOT_PRODUCTION": "1", "SECRET_KEY_FILE": str(secret), "ALLOWED_HOSTS": "aiot.example.com", **PRODUCTION_SERVICES})
    assert result.returncode == 0, result.stderr


def test_it_names_the_variable_with_a_bad_value():
    result = check({"INGEST_BATCH_MAX_MESSAGES": "lots"})
    assert result.returncode != 0 and "INGEST_BATCH_MAX_MESSAGES must be an integer" in result.stderr
    result = check({"DATABASE_URL": "mysql://db/aiot"})
    assert result.returncode != 0 and "DATABASE_URL" in result.stderr
