"""The doors of an exposed service: every URL needs a login unless explicitly exempt (under 3
roles and anonymous), failed logins lock out and are audited, production answers with its
security headers and refuses node credentials over plain HTTP, `check --deploy` is clean, the
demo data is refused on a production database."""

from __future__ import annotations

import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from edge_node.models import AuditEvent
from tests.test_production_guard import GOOD_SECRET, manage, production

# Paths an anonymous client may reach, each for a reason: the login pages, health probes,
# /metrics (its own token or loopback), the node API (node credentials), the favicon.
PUBLIC = {"login", "healthz", "readyz", "metrics", "favicon", "edge_node:enroll-api", "rollouts:download", "admin:login"}


def _every_url() -> list[tuple[str, str]]:
    """(name, path) of every URL pattern, its parameters filled with a plausible value."""
    out = []

    def walk(patterns, prefix: str, ns: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern), f"{ns}{p.namespace}:" if p.namespace else ns)
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                if route.startswith("^") or "(?P" in route:  # the admin's regex routes: covered by admin:index
                    continue
                for conv, value in (("<id:", "1"), ("<int:", "1"), ("<str:", "x"), ("<path:", "x"), ("<slug:", "x"), ("<", "x")):
                    while conv in route:
                        start = route.index(conv)
                        route = route[:start] + value + route[route.index(">", start) + 1:]
                out.append((f"{ns}{p.name}" if p.name else route, "/" + route))

    walk(get_resolver().url_patterns, "", "")
    return out


@pytest.mark.django_db
def test_every_url_needs_a_login_except_the_explicit_exemptions(client, manager, planner, admin_user, mqtt_url, settings):
    settings.MQTT_URL = mqtt_url  # /readyz looks for the real broker
    urls = _every_url()
    assert len(urls) > 30 and {"metrics", "readyz", "rollouts:download"} <= {n for n, _ in urls}
    for name, path in urls:
        resp = client.get(path)
        if path.startswith(("/api/v1/", "/api/schema/")):  # the REST API refuses by itself, as JSON (no login page)
            assert resp.status_code in (401, 403) and resp["Content-Type"].startswith("application/"), f"{path} answered {resp.status_code} anonymously"
        elif name in PUBLIC:
            assert not (resp.status_code == 302 and resp["Location"].startswith("/login/")), f"{path} should be public"
        else:
            logins = ("/login/?next=", "/admin/login/?next=") if name.startswith("admin:") else ("/login/?next=",)  # the admin guards its own too
            assert resp.status_code == 302 and resp["Location"].startswith(logins), f"{name} {path} answered {resp.status_code} anonymously"
    # Logged in, no page answers 500 for any role; /metrics stays closed to a non-local user.
    for user in (manager, planner, admin_user):
        client.force_login(user)
        for name, path in urls:
            if name in ("logout", "admin:logout"):
                continue
            assert client.get(path).status_code < 500, f"{name} {path} as {user.username}"
        assert client.get("/metrics", REMOTE_ADDR="198.51.100.9").status_code == 401
        client.logout()


@pytest.mark.django_db
def test_failed_logins_lock_out_the_address_and_the_user_name_and_are_audited(client, manager, settings):
    settings.THROTTLE_MAX_FAILURES = 5
    for _ in range(5):
        assert client.post("/login/", {"username": "fm", "password": "wrong"}).status_code == 200
    # Now even the right password is refused, from this address...
    locked = client.post("/login/", {"username": "fm", "password": "pw-fm"})
    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    assert int(locked["Retry-After"]) == settings.THROTTLE_LOCKOUT_S
    # ...and for this user name from elsewhere; another user from elsewhere logs in.
    assert client.post("/login/", {"username": "fm", "password": "pw-fm"}, REMOTE_ADDR="198.51.100.3").status_code == 429
    events = AuditEvent.objects.filter(action="throttle.lockout", ok=False)
    assert {e.target for e in events} == {"login:127.0.0.1", "login:user:fm"}
    # The admin's login page is throttled the same way (its own scope).
    for _ in range(5):
        assert client.post("/admin/login/", {"username": "nobody", "password": "x"}, REMOTE_ADDR="198.51.100.4").status_code == 200
    assert client.post("/admin/login/", {"username": "nobody", "password": "x"}, REMOTE_ADDR="198.51.100.4").status_code == 429


@pytest.mark.django_db
def test_a_good_login_clears_the_user_names_failures(client, manager, settings):
    settings.THROTTLE_MAX_FAILURES = 3
    for _ in range(2):
        client.post("/login/", {"username": "fm", "password": "wrong"}, REMOTE_ADDR="198.51.100.5")
    assert client.post("/login/", {"username": "fm", "password": "pw-fm"}, REMOTE_ADDR="198.51.100.6").status_code == 302
    client.logout()
    client.post("/login/", {"username": "fm", "password": "wrong"}, REMOTE_ADDR="198.51.100.7")
    assert client.post("/login/", {"username": "fm", "password": "pw-fm"}, REMOTE_ADDR="198.51.100.8").status_code == 302


@pytest.mark.django_db
def test_the_node_api_refuses_plain_http_when_https_is_required(client, settings):
    settings.REQUIRE_HTTPS_NODE_API = True
    plain = client.post("/api/enroll", data=json.dumps({"token": "x"}), content_type="application/json")
    assert plain.status_code == 403 and plain.json()["code"] == "https_required"
    assert client.get("/api/models/1/download").json()["code"] == "https_required"
    # Over HTTPS the request reaches the enrollment logic (and is refused for its bad token).
    secure = client.post("/api/enroll", data=json.dumps({"token": "x"}), content_type="application/json", secure=True)
    assert secure.status_code == 400 and secure.json()["code"] == "malformed_token"


def test_the_enroll_client_refuses_plain_http_to_another_host_unless_insecure():
    from edge_node.agent.enroll import EnrollError, request_enrollment

    with pytest.raises(EnrollError, match="refusing plain HTTP"):
        request_enrollment("http://192.0.2.1:8000", "aiot-enroll-x", timeout=0.5)
    with pytest.raises(EnrollError, match="cannot reach"):  # allowed, then the lab host is not there
        request_enrollment("http://192.0.2.1:8000", "aiot-enroll-x", insecure=True, timeout=0.5)


HEADERS_SCRIPT = (
    "from django.test import Client; r = Client().get('/login/', secure=True, HTTP_HOST='aiot.example.com'); "
    "import json; print(json.dumps({**dict(r.headers), 'cookies': {k: dict(v) for k, v in r.cookies.items()}, 'status': r.status_code}))"
)


def test_production_answers_with_its_security_headers_and_check_deploy_is_clean(tmp_path):
    result = manage("shell", "-c", HEADERS_SCRIPT, env=production(STATIC_STORAGE="plain"))  # no collectstatic here
    assert result.returncode == 0, result.stderr
    headers = json.loads(result.stdout.strip().splitlines()[-1])
    assert headers["status"] == 200
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert headers["Referrer-Policy"] == "same-origin" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["cookies"]["csrftoken"]["secure"] is True
    # A complete production configuration (README: Running in production) passes `check --deploy`.
    full = production(SECRET_KEY="Zq8-" + GOOD_SECRET + "_mW3xR7tY2", MQTT_PLATFORM_PASSWORD="pw", MQTT_PASSWORD_FILE=str(tmp_path / "passwd"),
                      MQTT_ACL_FILE=str(tmp_path / "acl"), MOSQUITTO_PID_FILE=str(tmp_path / "pid"), MODEL_SIGNING_KEY_FILE=str(tmp_path / "k.pem"))
    deploy = manage("check", "--deploy", "--fail-level", "WARNING", env=full)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert "no issues" in deploy.stdout


def test_production_refuses_the_demo_data():
    result = manage("load_demo", env=production())
    assert result.returncode != 0 and "refuses the demo data" in result.stderr
