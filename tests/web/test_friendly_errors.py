"""What a user meets when something is refused or missing: friendly 404/403/500 pages in the
user's words, form errors without database internals, one log line per refused request, and a
favicon on every page."""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from django.urls import path

from tests.factories import make_fleet
from twins.models import AlertRule


@pytest.fixture
def fleet(manager, planner, admin_user):
    return make_fleet(2, members=[manager, planner])


def test_it_answers_a_missing_asset_with_the_friendly_404_page(client, manager, fleet):
    client.force_login(manager)
    response = client.get("/assets/999999/")
    page = response.content.decode()
    assert response.status_code == 404
    assert 'id="error-page" data-status="404"' in page and "Back to the fleet" in page
    assert "URLconf" not in page and "urlpatterns" not in page and "Traceback" not in page


def test_it_names_the_role_a_page_needs_in_words(client, planner, fleet):
    client.force_login(planner)
    page = client.get("/rules/").content.decode()
    assert "admin role" in page and "facility_manager" not in page


def test_it_logs_one_line_without_a_traceback_per_refused_request(client, planner, fleet, caplog):
    client.force_login(planner)
    with caplog.at_level(logging.WARNING):
        assert client.get("/rules/").status_code == 403
    lines = [r for r in caplog.records if r.name.startswith("django")]
    assert len(lines) == 1 and "Forbidden" in lines[0].getMessage()
    # The handler's filter drops the traceback Django attaches (a 403 is not a server fault).
    from web.log_filters import RefusalsOneLine

    RefusalsOneLine().filter(lines[0])
    assert lines[0].exc_info is None


def boom(request):
    raise RuntimeError("a bug")


urlpatterns = [path("boom/", boom)]


@pytest.mark.urls("tests.web.test_friendly_errors")
def test_it_answers_a_server_error_with_the_friendly_500_page(db, admin_user):
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    response = client.get("/boom/")
    assert response.status_code == 500
    page = response.content.decode()
    assert 'data-status="500"' in page and "a bug" not in page and "RuntimeError" not in page


def test_it_explains_rule_form_errors_in_the_admins_words(client, admin_user, fleet):
    client.force_login(admin_user)
    metric = fleet.metrics["temperature_c"]
    form = {"metric": metric.id, "warning_above": "80", "critical_above": "100", "hysteresis": "-1", "min_duration_s": "-5", "enabled": "on"}
    page = client.post("/rules/new/", form).content.decode()
    assert "The hysteresis cannot be negative" in page and "The minimum duration cannot be negative" in page
    assert "alert_rule_" not in page and "Constraint" not in page
    assert not AlertRule.objects.exists()
    assert client.post("/rules/new/", {**form, "hysteresis": "1", "min_duration_s": "5"}).status_code == 302
    page = client.post("/rules/new/", {**form, "hysteresis": "1", "min_duration_s": "5"}).content.decode()
    assert "This metric has a rule already: edit that one." in page and "alert_rule_" not in page


def test_it_serves_a_favicon(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and b"".join(response.streaming_content)[:4] == b"\x00\x00\x01\x00"
    assert client.get("/static/favicon.svg").status_code == 200
