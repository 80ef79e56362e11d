"""Enrollment through the real HTTP endpoint: happy path, every refusal, the race, the audit."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from edge_node import const
from edge_node.credentials import verify_mosquitto_hash
from edge_node.models import AuditEvent, EdgeNode, EnrollmentToken
from edge_node.services import (
    EnrollmentError,
    authenticate_node,
    create_enrollment_token,
    enroll_node,
)
from edge_node.signing_keys import public_key_pem, sign, verify
from tests.factories import make_site

pytestmark = pytest.mark.django_db


def post(client, body, **extra):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post("/api/enroll", data=data, content_type="application/json", REMOTE_ADDR="203.0.113.7", **extra)


def test_it_enrolls_a_node_with_a_fresh_token(client, admin_user):
    site = make_site()
    token, plaintext = create_enrollment_token(site, admin_user, node_id="gw-enroll-1")
    assert token.token_hash != plaintext and plaintext not in token.token_hash

    resp = post(client, {"token": plaintext, "name": "Gate <b>1</b>"})

    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["node_id"] == "gw-enroll-1"
    assert body["site"] == site.key
    assert body["mqtt"] == {"url": "mqtts://broker.example.com:8883", "username": "gw-enroll-1", "password": body["mqtt"]["password"]}
    assert body["model_public_key"] == public_key_pem()
    node = EdgeNode.objects.get(node_id="gw-enroll-1")
    # Only hashes are stored.
    assert body["secret"] not in node.secret_hash and body["mqtt"]["password"] not in node.mqtt_password_hash
    assert verify_mosquitto_hash(body["mqtt"]["password"], node.mqtt_password_hash)
    assert authenticate_node("gw-enroll-1", body["secret"]) == node
    assert authenticate_node("gw-enroll-1", body["secret"] + "x") is None
    assert node.enrolled_at is not None and node.site == site
    token.refresh_from_db()
    assert token.used_at is not None and token.enrolled_node == node and token.used_by_addr == "203.0.113.7"
    event = AuditEvent.objects.get(action=const.AUDIT_ENROLL)
    assert (event.ok, event.target, event.remote_addr) == (True, "gw-enroll-1", "203.0.113.7")


def test_it_generates_a_node_id_from_the_site_when_none_is_given(client):
    site = make_site()
    _, plaintext = create_enrollment_token(site)
    body = post(client, {"token": plaintext}).json()
    assert body["node_id"].startswith(site.key + "-")
    assert EdgeNode.objects.filter(node_id=body["node_id"], site=site).exists()


@pytest.mark.parametrize(
    ("make_token", "status", "message"),
    [
        ("expired", 403, "enrollment token expired"),
        ("reused", 403, "enrollment token already used"),
        ("forged", 403, "unknown enrollment token"),
        ("malformed", 400, "malformed enrollment token"),
    ],
)
def test_it_refuses_a_bad_token_and_audits_it(client, make_token, status, message):
    site = make_site()
    token, plaintext = create_enrollment_token(site)
    if make_token == "expired":
        EnrollmentToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    elif make_token == "reused":
        assert post(client, {"token": plaintext}).status_code == 201
    elif make_token == "forged":
        plaintext = const.TOKEN_PREFIX + "A" * 43
    else:
        plaintext = "not-a-token"
    nodes_before = EdgeNode.objects.count()

    resp = post(client, {"token": plaintext})

    assert resp.status_code == status
    assert resp.json()["error"] == message
    assert EdgeNode.objects.count() == nodes_before
    refused = AuditEvent.objects.filter(action=const.AUDIT_ENROLL, ok=False).get()
    assert refused.detail["message"] == message and refused.remote_addr == "203.0.113.7"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "malformed body"),
        ([1, 2], "malformed body"),
        ({"tok": "x"}, "malformed body"),
        ({"token": 12}, "malformed body"),
    ],
)
def test_it_refuses_a_malformed_body(client, body, message):
    resp = post(client, body if isinstance(body, bytes) else json.dumps(body))
    assert resp.status_code == 400
    assert resp.json()["error"].startswith(message)
    assert AuditEvent.objects.filter(action=const.AUDIT_ENROLL, ok=False, remote_addr="203.0.113.7").count() == 1


def test_it_refuses_get_with_a_json_error(client):
    resp = client.get("/api/enroll")
    assert resp.status_code == 405
    assert resp["Allow"] == "POST"
    assert "method not allowed" in resp.json()["error"]


def test_it_needs_no_csrf_token(admin_user):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    _, plaintext = create_enrollment_token(make_site())
    assert post(strict, {"token": plaintext}).status_code == 201


def test_it_locks_out_an_address_after_failed_attempts_and_audits_it(client, settings):
    for _ in range(settings.THROTTLE_MAX_FAILURES):
        assert post(client, {"token": "nope"}).status_code == 400
    resp = post(client, {"token": "nope"})
    assert resp.status_code == 429 and int(resp["Retry-After"]) == settings.THROTTLE_LOCKOUT_S
    assert "too many" in resp.json()["error"]
    assert AuditEvent.objects.filter(action="throttle.lockout", ok=False, target="enroll:203.0.113.7").count() == 1
    # Another address is not affected.
    other = client.post("/api/enroll", data="{}", content_type="application/json", REMOTE_ADDR="198.51.100.2")
    assert other.status_code == 400


def test_it_lets_only_one_of_two_racing_enrollments_win(transactional_db):
    _, plaintext = create_enrollment_token(make_site())
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt() -> None:
        from django.db import close_old_connections

        barrier.wait()
        try:
            enroll_node(plaintext, remote_addr="127.0.0.1")
            outcomes.append("ok")
        except EnrollmentError as exc:
            outcomes.append(exc.code)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert sorted(outcomes) == ["ok", "token_used"]
    assert EdgeNode.objects.count() == 1
    assert AuditEvent.objects.filter(action=const.AUDIT_ENROLL, ok=True).count() == 1
    assert AuditEvent.objects.filter(action=const.AUDIT_ENROLL, ok=False).count() == 1


def test_it_refuses_to_enroll_into_a_revoked_node(client):
    site = make_site()
    EdgeNode.objects.create(node_id="gw-gone", site=site, revoked_at=timezone.now())
    _, plaintext = create_enrollment_token(site, node_id="gw-gone")
    resp = post(client, {"token": plaintext})
    assert resp.status_code == 409
    assert "revoked" in resp.json()["error"]


def test_it_signs_with_a_key_kept_private(settings):
    from edge_node.signing_keys import signing_key_path

    signature = sign(b"model bytes")
    assert verify(b"model bytes", signature, public_key_pem())
    assert not verify(b"model bytes!", signature)
    assert signing_key_path().stat().st_mode & 0o777 == 0o600
