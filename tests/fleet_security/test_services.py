"""Service functions the next features build on: node HTTP auth, broker files, commands."""

from __future__ import annotations

import base64
import stat
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import RequestFactory

from edge_node import const
from edge_node.broker_acl import (
    BrokerAccount,
    BrokerFilesError,
    render_acl_file,
    topic_matches,
)
from edge_node.models import AuditEvent, EnrollmentToken
from edge_node.node_auth import node_from_request
from edge_node.services import (
    create_enrollment_token,
    enroll_node,
    platform_broker_url,
    revoke_node,
    write_broker_files,
)
from tests.factories import make_site

pytestmark = pytest.mark.django_db


def basic(node_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{node_id}:{secret}".encode()).decode()


def test_it_authenticates_a_node_by_its_secret_until_revoked():
    _, token = create_enrollment_token(make_site(), node_id="gw-http-1")
    result = enroll_node(token)
    rf = RequestFactory()
    assert node_from_request(rf.get("/x", HTTP_AUTHORIZATION=basic("gw-http-1", result.secret))) == result.node
    assert node_from_request(rf.get("/x", HTTP_AUTHORIZATION=basic("gw-http-1", "wrong"))) is None
    assert node_from_request(rf.get("/x", HTTP_AUTHORIZATION=basic("gw-nobody", result.secret))) is None
    assert node_from_request(rf.get("/x", HTTP_AUTHORIZATION="Bearer abc")) is None
    assert node_from_request(rf.get("/x")) is None
    revoke_node(result.node)
    assert node_from_request(rf.get("/x", HTTP_AUTHORIZATION=basic("gw-http-1", result.secret))) is None


def test_it_writes_the_broker_files_with_the_configured_mode(settings, tmp_path):
    settings.MQTT_BROKER_FILE_MODE = 0o640
    _, token = create_enrollment_token(make_site(), node_id="gw-files-1")
    enroll_node(token)
    out = StringIO()
    call_command("broker_files", "--password-file", str(tmp_path / "passwd"), "--acl-file", str(tmp_path / "acl"), "--no-reload", stdout=out)
    assert "1 node account(s) written" in out.getvalue()
    passwd = (tmp_path / "passwd").read_text().splitlines()
    assert sorted(line.split(":")[0] for line in passwd) == ["aiot-ingest", "aiot-platform", "gw-files-1"]
    acl = (tmp_path / "acl").read_text()
    assert "user gw-files-1\ntopic write aiot/v1/gw-files-1/telemetry\n" in acl
    assert "topic read aiot/v1/gw-files-1/cmd\n" in acl
    for name in ("passwd", "acl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.django_db(transaction=True)
def test_it_keeps_a_revocation_and_says_so_when_the_broker_cannot_be_reloaded(settings, tmp_path):
    settings.MQTT_PASSWORD_FILE = str(tmp_path / "passwd")
    settings.MQTT_ACL_FILE = str(tmp_path / "acl")
    settings.MOSQUITTO_PID_FILE = str(tmp_path / "missing.pid")
    _, token = create_enrollment_token(make_site(), node_id="gw-reload-1")
    result = enroll_node(token)
    note = revoke_node(result.node, actor="admin1")
    assert "broker files NOT updated" in note and "missing.pid" in note
    result.node.refresh_from_db()
    assert result.node.revoked_at is not None
    # The files were written (the node is gone from them) even though the reload failed.
    assert "gw-reload-1" not in (tmp_path / "passwd").read_text()
    assert AuditEvent.objects.filter(action=const.AUDIT_BROKER_FILES, ok=False, target="gw-reload-1").exists()


def test_it_refuses_broker_files_without_service_passwords(settings, tmp_path):
    settings.MQTT_PLATFORM_PASSWORD = ""
    with pytest.raises(BrokerFilesError, match="MQTT_PLATFORM_PASSWORD"):
        write_broker_files(password_file=tmp_path / "p", acl_file=tmp_path / "a", reload=False)


def test_it_refuses_names_that_would_widen_the_acl():
    with pytest.raises(BrokerFilesError):
        render_acl_file([BrokerAccount("evil\ntopic readwrite #", "$7$101$x$y", const.KIND_NODE)])
    with pytest.raises(BrokerFilesError):
        render_acl_file([BrokerAccount("+", "$7$101$x$y", const.KIND_NODE)])


@pytest.mark.parametrize(("acl", "topic", "allowed"), [
    ("aiot/v1/+/telemetry", "aiot/v1/n1/telemetry", True),
    ("aiot/v1/+/telemetry", "aiot/v1/+/telemetry", True),
    ("aiot/v1/n1/cmd", "aiot/v1/+/cmd", False),
    ("aiot/v1/n1/cmd", "aiot/v1/n1/cmd/ack", False),
    ("aiot/v1/#", "aiot/v1/n1/cmd/ack", True),
    ("aiot/v1/+/telemetry", "aiot/v1/#", False),
])
def test_it_matches_topics_like_the_broker(acl, topic, allowed):
    assert topic_matches(acl, topic) is allowed


def test_it_prints_a_token_from_the_command_line():
    site = make_site()
    out, err = StringIO(), StringIO()
    call_command("create_enrollment_token", site.key, "--node-id", "gw-cmd-1", "--url", "https://aiot.example", stdout=out, stderr=err)
    token = out.getvalue().strip()
    assert token.startswith(const.TOKEN_PREFIX)
    assert f"--url https://aiot.example --token {token}" in err.getvalue()
    assert EnrollmentToken.objects.get().node_id == "gw-cmd-1"


def test_it_gives_the_platform_its_own_broker_login(settings):
    settings.MQTT_URL = "mqtts://ingest:pw@broker.example:8883"
    settings.MQTT_PLATFORM_PASSWORD = "p@ss/word"
    assert platform_broker_url() == "mqtts://aiot-platform:p%40ss%2Fword@broker.example:8883"


def test_it_warns_about_an_unmanaged_production_broker(settings):
    from edge_node.checks import check_fleet_security

    settings.MQTT_EMBEDDED = False
    settings.MQTT_PLATFORM_PASSWORD = ""
    ids = {w.id for w in check_fleet_security()}
    assert ids == {"edge_node.W001", "edge_node.W002", "edge_node.W004"}
    settings.MQTT_PLATFORM_PASSWORD = "x"
    settings.MQTT_PASSWORD_FILE, settings.MQTT_ACL_FILE, settings.MODEL_SIGNING_KEY_FILE = "/p", "/a", "/k.pem"
    assert {w.id for w in check_fleet_security()} == {"edge_node.W003"}


@pytest.mark.django_db(transaction=True)
def test_it_issues_fleet_passwords_in_one_broker_rewrite(settings, tmp_path):
    from edge_node.credentials import verify_mosquitto_hash
    from edge_node.models import EdgeNode
    from edge_node.services import authenticate_node, issue_fleet_credentials

    settings.MQTT_PASSWORD_FILE, settings.MQTT_ACL_FILE = str(tmp_path / "passwd"), str(tmp_path / "acl")
    site = make_site()
    for node_id in ("sim-1", "sim-2"):
        EdgeNode.objects.create(node_id=node_id, site=site)
    EdgeNode.objects.create(node_id="sim-gone", site=site, revoked_at="2026-01-01T00:00:00Z")

    issued = issue_fleet_credentials(["sim-1", "sim-2", "sim-gone"])

    assert sorted(issued) == ["sim-1", "sim-2"]
    for node_id, creds in issued.items():
        assert verify_mosquitto_hash(creds.mqtt_password, EdgeNode.objects.get(node_id=node_id).mqtt_password_hash)
        # ...and the HTTP secret the simulated node downloads model artifacts with.
        assert authenticate_node(node_id, creds.secret) is not None
    assert AuditEvent.objects.filter(action=const.AUDIT_BROKER_FILES, ok=True).count() == 1
    assert sorted(line.split(":")[0] for line in (tmp_path / "passwd").read_text().splitlines()) == ["aiot-ingest", "aiot-platform", "sim-1", "sim-2"]
