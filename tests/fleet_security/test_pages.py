"""Admin pages: enrollment tokens (shown once), nodes with revoke, audit log; admins only."""

from __future__ import annotations

import re

import pytest

from edge_node import const
from edge_node.models import AuditEvent, EdgeNode, EnrollmentToken
from edge_node.services import create_enrollment_token, enroll_node
from tests.factories import make_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_admin(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize("persona", ["planner", "manager"])
@pytest.mark.parametrize("url", ["/fleet-security/tokens/", "/fleet-security/nodes/", "/fleet-security/audit/"])
def test_it_shows_the_403_page_to_non_admins(client, request, persona, url):
    client.force_login(request.getfixturevalue(persona))
    resp = client.get(url)
    assert resp.status_code == 403
    assert b"admin" in resp.content


@pytest.mark.parametrize("persona", ["planner", "manager"])
def test_it_lets_no_planner_or_manager_create_tokens_or_revoke(client, request, persona):
    site = make_site()
    node = EdgeNode.objects.create(node_id="gw-keep", site=site)
    client.force_login(request.getfixturevalue(persona))
    assert client.post("/fleet-security/tokens/", {"site": site.pk, "ttl_hours": 1}).status_code == 403
    assert client.post("/fleet-security/nodes/gw-keep/revoke/").status_code == 403
    assert not EnrollmentToken.objects.exists()
    node.refresh_from_db()
    assert node.revoked_at is None


def test_it_redirects_anonymous_users_to_login(client):
    resp = client.get("/fleet-security/tokens/")
    assert resp.status_code == 302 and "/login/" in resp["Location"]


def test_it_shows_a_new_token_once_with_its_command_line(as_admin, admin_user):
    site = make_site(name="Plant <North>")
    resp = as_admin.post("/fleet-security/tokens/", {"site": site.pk, "node_id": "gw-page-1", "tags": "line-1", "ttl_hours": 2})
    # Post/redirect/get: reloading the page that shows the token creates no second one.
    assert resp.status_code == 302 and resp["Location"] == "/fleet-security/tokens/"
    resp = as_admin.get("/fleet-security/tokens/")
    html = resp.content.decode()
    plaintext = re.search(r'<code id="token-value">([^<]+)</code>', html).group(1)
    assert f"python -m edge_node.agent enroll --url http://testserver --token {plaintext} --config node.toml" in html
    assert "Plant &lt;North&gt;" in html and "Plant <North>" not in html
    assert resp["Cache-Control"] == "no-store"
    token = EnrollmentToken.objects.get()
    assert token.created_by == admin_user and token.node_id == "gw-page-1" and plaintext not in token.token_hash
    # Shown once: the list page never shows it again.
    assert plaintext not in as_admin.get("/fleet-security/tokens/").content.decode()
    # ...and it works.
    assert enroll_node(plaintext).node.node_id == "gw-page-1"
    assert AuditEvent.objects.filter(action=const.AUDIT_TOKEN_CREATED, actor=admin_user.username).exists()


def test_it_rejects_a_bad_node_id_in_the_form(as_admin):
    site = make_site()
    resp = as_admin.post("/fleet-security/tokens/", {"site": site.pk, "node_id": "bad id/+", "ttl_hours": 2})
    assert resp.status_code == 200
    assert "Letters, digits" in resp.content.decode()
    assert not EnrollmentToken.objects.exists()


def test_it_revokes_a_node_from_the_nodes_page(as_admin, admin_user, django_capture_on_commit_callbacks):
    site = make_site()
    _, plaintext = create_enrollment_token(site, node_id="gw-rev-1")
    enroll_node(plaintext)
    page = as_admin.get("/fleet-security/nodes/").content.decode()
    assert 'action="/fleet-security/nodes/gw-rev-1/revoke/"' in page and "js/revoke_confirm.js" in page  # asks first (test_browser)

    with django_capture_on_commit_callbacks(execute=True):
        resp = as_admin.post("/fleet-security/nodes/gw-rev-1/revoke/", follow=True)

    assert "Node gw-rev-1 revoked" in resp.content.decode()
    node = EdgeNode.objects.get(node_id="gw-rev-1")
    assert node.revoked_at is not None and node.secret_hash == "" and node.mqtt_password_hash == ""
    event = AuditEvent.objects.get(action=const.AUDIT_REVOKE)
    assert (event.actor, event.target) == (admin_user.username, "gw-rev-1")
    assert as_admin.get("/fleet-security/nodes/gw-rev-1/revoke/").status_code == 405


def test_it_filters_the_audit_log_by_node_and_action(as_admin):
    site = make_site()
    for node_id in ("gw-audit-1", "gw-audit-2"):
        _, plaintext = create_enrollment_token(site, node_id=node_id)
        enroll_node(plaintext, remote_addr="192.0.2.1")
    AuditEvent.objects.create(actor="<script>x</script>", action=const.AUDIT_ENROLL, ok=False, target="token:abc")

    html = as_admin.get("/fleet-security/audit/", {"node": "gw-audit-1", "action": const.AUDIT_ENROLL}).content.decode()
    rows = re.findall(r'<tr class="(ok|refused)">', html)
    assert rows == ["ok"]
    assert "gw-audit-1" in html and "gw-audit-2" not in html.split("<tbody>")[1]

    everything = as_admin.get("/fleet-security/audit/").content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;" in everything and "<script>x</script>" not in everything
    assert "refused" in everything and "192.0.2.1" in everything


def test_the_audit_log_shows_details_as_people_read_them_and_exports_them_as_json(as_admin, admin_user):
    import csv
    import io
    import json

    from api.tokens import create_token

    detail = {"site": None, "downgrade": False, "nodes": ["gw-1", "gw-2"], "gates": {"max_p99_latency_ms": 50.0, "min_agreement": 0.9}}
    AuditEvent.objects.create(actor="admin1", action="rollout.proposed", target="rollout 7", detail=detail)
    row = as_admin.get("/fleet-security/audit/").content.decode().split("rollout 7")[1].split("</tr>")[0]
    assert "site:</span> -" in row and "downgrade:</span> no" in row and "nodes:</span> gw-1, gw-2" in row
    assert "max_p99_latency_ms 50" in row and "min_agreement 0.9" in row
    assert "None" not in row and "False" not in row and "[" not in row and "{" not in row

    key = create_token(admin_user, "audit")[1]
    body = b"".join(as_admin.get("/api/v1/exports/audit.csv", HTTP_AUTHORIZATION=f"Token {key}").streaming_content).decode()
    [exported] = [r for r in csv.DictReader(io.StringIO(body)) if r["target"] == "rollout 7"]
    assert json.loads(exported["detail"]) == detail
