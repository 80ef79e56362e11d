"""Bad production configuration stops the start with a message naming the variable, or works:
a weak or missing secret, a broker without TLS, a CA or certificate that does not match, a
DATABASE_URL with a percent-encoded password or ?sslmode=."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import _missing
from tests.helpers import ROOT, free_port, wait_until
from tests.test_settings import PRODUCTION_SERVICES

GOOD_SECRET = "k7Qp2-vX9mZ4_tR8wLs3Nf6Yh1Jc5Bd0GeUaOiPx"
STRIPPED = ("DEBUG", "SECRET_KEY", "SECRET_KEY_FILE", "ALLOWED_HOSTS", "AIOT_PRODUCTION", "MQTT_URL", "MQTT_CA_FILE", "TLS_CERT_FILE",
            "TLS_KEY_FILE", "AIOT_ALLOW_PLAIN_MQTT", "MQTT_NODE_BROKER_URL")


def manage(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=timeout)


def production(**overrides: str) -> dict[str, str]:
    env = {"AIOT_PRODUCTION": "1", "SECRET_KEY": GOOD_SECRET, "ALLOWED_HOSTS": "aiot.example.com", **PRODUCTION_SERVICES}
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def refused(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, f"started although it should not:\n{result.stdout}{result.stderr}"
    return result.stderr.strip().splitlines()[-1]


def make_site_certs(folder: Path, *hosts: str) -> Path:
    args = [sys.executable, "deploy/make_certs.py", "--dir", str(folder)]
    for host in hosts:
        args += ["--host", host]
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True, timeout=60)
    return folder


def test_it_refuses_a_weak_secret_naming_secret_key():
    message = refused(manage("check", env=production(SECRET_KEY="ab" * 20)))
    assert "SECRET_KEY" in message and "2 different" in message


def test_it_names_a_secret_file_that_cannot_be_read(tmp_path):
    message = refused(manage("check", env=production(SECRET_KEY=None, SECRET_KEY_FILE=str(tmp_path / "nope"))))
    assert "SECRET_KEY_FILE=" in message and "cannot be read" in message


def test_it_refuses_production_without_the_shared_services():
    message = refused(manage("check", env=production(REDIS_URL="")))
    assert "AIOT_PRODUCTION=1 needs REDIS_URL" in message


def test_it_refuses_a_broker_without_tls_unless_allowed():
    plain = "mqtt://aiot-ingest:pw@10.0.0.1:1883"
    assert "refuses MQTT_URL without TLS" in refused(manage("check", env=production(MQTT_URL=plain)))
    assert "refuses MQTT_NODE_BROKER_URL without TLS" in refused(manage("check", env=production(MQTT_NODE_BROKER_URL="mqtt://gw.example:1883")))
    allowed = manage("check", env=production(MQTT_URL=plain, AIOT_ALLOW_PLAIN_MQTT="1"))
    assert allowed.returncode == 0, allowed.stderr


def test_it_names_a_ca_file_that_is_missing_or_not_pem(tmp_path):
    assert "MQTT_CA_FILE=" in refused(manage("check", env=production(MQTT_CA_FILE=str(tmp_path / "ca.pem"))))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    assert "is not a PEM certificate bundle" in refused(manage("check", env=production(MQTT_CA_FILE=str(junk))))


def test_it_refuses_a_web_certificate_that_does_not_match_its_key_or_host(tmp_path):
    site = make_site_certs(tmp_path / "site", "aiot.example.com")
    other = make_site_certs(tmp_path / "other", "aiot.example.com")
    good = production(TLS_CERT_FILE=str(site / "server.pem"), TLS_KEY_FILE=str(site / "server.key"))
    assert manage("check", env=good).returncode == 0
    mismatched = production(TLS_CERT_FILE=str(site / "server.pem"), TLS_KEY_FILE=str(other / "server.key"))
    assert "does not match TLS_KEY_FILE" in refused(manage("check", env=mismatched))
    wrong_host = production(TLS_CERT_FILE=str(site / "server.pem"), TLS_KEY_FILE=str(site / "server.key"), ALLOWED_HOSTS="other.example.com")
    message = refused(manage("check", env=wrong_host))
    assert "TLS_CERT_FILE=" in message and "does not name other.example.com" in message


def test_it_reads_a_percent_encoded_password_and_sslmode_from_database_url(postgres):
    from django.db import connection

    settings_dict = connection.settings_dict
    url = (f"postgres://{settings_dict['USER'] or 'postgres'}:p%40ss%2Fw%3Ard@{settings_dict['HOST'] or '127.0.0.1'}:{settings_dict['PORT'] or 5432}"
           f"/{settings_dict['NAME']}?sslmode=prefer&connect_timeout=5")
    code = ("from django.db import connection; connection.ensure_connection(); "
            "print(connection.settings_dict['PASSWORD'], connection.settings_dict['OPTIONS']['sslmode'], connection.vendor)")
    result = manage("shell", "-c", code, env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == ["p@ss/w:rd", "prefer", "postgresql"]
    bad = manage("check", env={"DATABASE_URL": url.replace("sslmode=prefer", "sslmode=sometimes")})
    assert "DATABASE_URL: sslmode must be one of" in refused(bad)


@pytest.fixture
def tls_broker(tmp_path):
    if shutil.which("mosquitto") is None:
        _missing("needs mosquitto for a TLS broker")
    certs = make_site_certs(tmp_path / "tls", "127.0.0.1")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\ncertfile {certs}/server.pem\nkeyfile {certs}/server.key\n"
                    f"log_dest none\n{'user root' if os.geteuid() == 0 else ''}\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket

    def listening() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    wait_until(listening, 10, what="the TLS broker")
    yield port, certs
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def test_the_ingest_stops_on_a_broker_certificate_its_ca_does_not_sign(tls_broker, tmp_path, postgres):
    port, _ = tls_broker
    other = make_site_certs(tmp_path / "other-site", "127.0.0.1")
    result = manage("ingest", "--name", "t-tls", env={"MQTT_URL": f"mqtts://ingest:pw@127.0.0.1:{port}", "MQTT_CA_FILE": str(other / "ca.pem")},
                    timeout=60)
    message = refused(result)
    assert "MQTT_URL: the broker's certificate at 127.0.0.1" in message and "MQTT_CA_FILE=" in message


def test_the_rollout_listener_stops_on_a_broker_certificate_for_another_host(tls_broker, postgres):
    port, certs = tls_broker
    result = manage("rollout_listener", env={"MQTT_URL": f"mqtts://localhost:{port}", "MQTT_CA_FILE": str(certs / "ca.pem")}, timeout=60)
    message = refused(result)
    assert "MQTT_URL" in message and "localhost" in message and ("mismatch" in message or "match" in message)
