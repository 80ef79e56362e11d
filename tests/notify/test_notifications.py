"""Notifications as a manager receives them: real SMTP and HTTP receivers on localhost; the
tasks run as plain functions here (test_on_worker.py runs them on a real Celery worker)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from notify import const
from notify.dispatch import deliver, flush, record_event, replay
from notify.forms import SubscriptionForm
from notify.models import Delivery, Subscription
from notify.signing import verify_body
from notify.sources import sweep
from tests.factories import make_fleet, make_site
from twins.alerting import AlertEngine
from twins.models import Alert, AlertRule, TwinState

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(manager, planner):
    return make_fleet(2, members=[manager, planner])


def subscribe(user, channel="email", target="fm@example.org", **kw) -> Subscription:
    return Subscription.objects.create(user=user, name=kw.pop("name", "mine"), channel=channel, target=target, **kw)


def rule_readings(engine, fleet, values, start=None, step_s=5.0):
    start = start or datetime.now(UTC) - timedelta(minutes=10)
    metric = fleet.metrics["temperature_c"]
    rows = [(start + timedelta(seconds=i * step_s), fleet.assets[0].id, metric.id, v) for i, v in enumerate(values)]
    return engine.process(rows)


def test_it_emails_a_real_alert_with_a_signed_link_and_nothing_for_noise(client, manager, fleet, smtp, queue, django_capture_on_commit_callbacks):
    AlertRule.objects.create(metric=fleet.metrics["temperature_c"], warning_above=80, critical_above=95, hysteresis=2, min_duration_s=10)
    subscribe(manager, min_severity="warning")
    other = make_site()  # not the manager's: its events never reach them
    record_event(const.ALERT_OPENED, title="elsewhere", severity="critical", site_id=other.id)
    engine = AlertEngine(broadcast=False)
    with django_capture_on_commit_callbacks(execute=True):
        rule_readings(engine, fleet, [79, 81, 79, 81, 79, 70])  # wobbles: never 10 s above -> noise
    queue.run()
    assert smtp.inbox == [] and not Alert.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        rule_readings(engine, fleet, [85, 86, 87, 88, 89], start=datetime.now(UTC) - timedelta(minutes=5))  # 20 s above warning
    queue.run()
    [mail] = smtp.inbox
    assert mail.to == ["fm@example.org"] and "[warning]" in mail.subject and fleet.assets[0].name in mail.subject and "opened" in mail.subject
    link = re.search(r"https?://\S+/n/(\S+)/", mail.body)
    assert link
    path = f"/n/{link.group(1)}/"
    assert client.get(path).status_code == 302 and client.get(path)["Location"].startswith("/login/")  # login still required
    client.force_login(manager)
    assert client.get(path)["Location"] == f"/assets/{fleet.assets[0].id}/"
    assert client.get(path[:-3] + "xx/").status_code == 404  # a tampered link
    [d] = Delivery.objects.all()
    assert d.state == const.SENT and d.attempts == 1 and d.events == 1


def test_it_coalesces_a_storm_into_one_message(manager, fleet, smtp, queue, django_capture_on_commit_callbacks):
    subscribe(manager)
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(25):
            record_event(const.ALERT_OPENED, title=f"pump {i} vibration high", severity="critical" if i == 7 else "warning", site_id=fleet.site.id)
    flushes = [s for s in queue.sent if s[0] == "notify.flush"]
    # the first goes at once (leading edge), the others wait for the window's end
    assert len(flushes) == 25 and flushes[0][2] is None and all(c is None or 0 < c <= 1.0 for _n, _a, c in flushes[1:]) and flushes[1][2]
    queue.run()
    [mail] = smtp.inbox
    assert mail.subject.startswith("[critical] 25 events") and mail.body.count("pump ") == 25
    assert Delivery.objects.get().events == 25


def test_it_signs_webhooks_retries_a_failing_receiver_with_backoff_then_fails_and_replays(manager, fleet, receiver, queue, settings, django_capture_on_commit_callbacks):
    settings.NOTIFY_MAX_ATTEMPTS = 4
    sub = subscribe(manager, channel="webhook", target=receiver.url)
    receiver.status = 503
    with django_capture_on_commit_callbacks(execute=True):
        record_event(const.ALERT_ESCALATED, title="Winding temperature critical", severity="critical", site_id=fleet.site.id)
        flush(sub.id)
    waits = []
    for _ in range(4):
        [(name, [delivery_id], _c)] = [s for s in queue.sent if s[0] == "notify.deliver"] or [("none", [0], 0)]
        queue.sent = []
        Delivery.objects.filter(id=delivery_id).update(next_attempt_at=None)  # time passes
        deliver(delivery_id)
        waits += [c for n, _a, c in queue.sent if n == "notify.deliver"]
    d = Delivery.objects.get()
    assert waits == [2.0, 4.0, 8.0] and d.state == const.FAILED and d.attempts == 4 and "HTTP 503" in d.last_error
    assert receiver.received == []
    receiver.status = 200
    with django_capture_on_commit_callbacks(execute=True):
        assert replay(d.id)
    queue.run()
    [hook] = receiver.received
    assert Delivery.objects.get().state == const.SENT
    ts = int(hook.headers[const.HEADER_TIMESTAMP])
    assert verify_body(sub.secret, ts, hook.body, hook.headers[const.HEADER_SIGNATURE])
    assert not verify_body("another secret", ts, hook.body, hook.headers[const.HEADER_SIGNATURE])
    assert hook.json["events"][0]["title"] == "Winding temperature critical" and hook.json["events"][0]["link"].startswith("http")


def test_it_posts_a_chat_compatible_payload(manager, fleet, receiver, queue, django_capture_on_commit_callbacks):
    subscribe(manager, channel="webhook", target=receiver.url, payload_format=const.FORMAT_CHAT)
    with django_capture_on_commit_callbacks(execute=True):
        record_event(const.NODE_OFFLINE, title="Edge node gw-1 offline for 12 min", site_id=fleet.site.id)
    queue.run()
    assert set(receiver.received[0].json) == {"text"} and "gw-1 offline" in receiver.received[0].json["text"]


def test_it_holds_events_in_quiet_hours_and_sends_them_after(manager, fleet, smtp, queue, django_capture_on_commit_callbacks):
    sub = subscribe(manager, quiet_start=time(22, 0), quiet_end=time(6, 0), quiet_timezone="UTC")
    night = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    with django_capture_on_commit_callbacks(execute=True):
        record_event(const.ALERT_OPENED, title="compressor hot", site_id=fleet.site.id)
    assert flush(sub.id, now=night) is None
    with django_capture_on_commit_callbacks(execute=True):
        assert flush(sub.id, now=night.replace(hour=6, minute=1)) is not None
    queue.run()
    assert len(smtp.inbox) == 1


def test_it_filters_by_severity_site_and_kind(manager, fleet, queue):
    other_site = make_site(members=[manager])
    subscribe(manager, min_severity="critical", kinds=[const.ALERT_OPENED]).sites.add(fleet.site)
    record_event(const.ALERT_OPENED, title="warning only", severity="warning", site_id=fleet.site.id)
    record_event(const.ALERT_OPENED, title="other site", severity="critical", site_id=other_site.id)
    record_event(const.ALERT_CLEARED, title="a clear", severity="critical", site_id=fleet.site.id)
    record_event(const.ALERT_OPENED, title="this one", severity="critical", site_id=fleet.site.id)
    from notify.models import Pending

    assert [p.event.title for p in Pending.objects.select_related("event")] == ["this one"]


def test_it_refuses_webhook_urls_at_the_platform_or_not_http(manager, settings):
    settings.PLATFORM_PUBLIC_URL = "https://aiot.example.org"
    settings.ALLOWED_HOSTS = ["aiot.example.org", "localhost"]
    base = {"name": "x", "channel": "webhook", "payload_format": "json", "min_severity": "warning", "quiet_timezone": "UTC", "mode": "immediate", "digest_every_s": 3600}
    settings.NOTIFY_PLATFORM_PORTS = [8000]
    refused = ("ftp://files.example.org/x", "file:///etc/passwd", "gopher://hooks.example.org/", "https://aiot.example.org/api/v1/alerts/",
               "http://localhost:8000/admin/", "https://user:pw@hooks.example.org/",
               # the platform's loopback port in other spellings: 127.0.0.1, 127.1, 2130706433, 0x7f.1, ::1, ::ffff:127.0.0.1, LOCALHOST.
               "http://127.0.0.1:8000/", "http://127.1:8000/", "http://2130706433:8000/", "http://0x7f.1:8000/", "http://[::1]:8000/",
               "http://[::ffff:127.0.0.1]:8000/", "http://LOCALHOST.:8000/",
               # never a destination: this machine's any-address, link-local (cloud metadata), multicast
               "http://0.0.0.0:9000/", "http://[::]:9000/", "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://224.0.0.1/")
    for url in refused:
        form = SubscriptionForm(data={**base, "target": url}, instance=Subscription(user=manager))
        assert not form.is_valid() and "target" in form.errors, url
    for url in ("https://hooks.example.org/aiot", "http://127.0.0.1:9876/cmms", "http://10.0.0.5/hook"):  # another local service is fine
        ok = SubscriptionForm(data={**base, "target": url}, instance=Subscription(user=manager))
        assert ok.is_valid(), (url, ok.errors)
    bad_mail = SubscriptionForm(data={**base, "channel": "email", "target": "not-an-address"}, instance=Subscription(user=manager))
    assert not bad_mail.is_valid() and "target" in bad_mail.errors


def test_a_webhook_whose_name_now_resolves_to_the_platform_is_not_sent(settings):
    """Checked again at send time: a name that passed validation may resolve elsewhere later."""
    from notify.targets import check_resolved

    settings.ALLOWED_HOSTS = ["localhost"]
    settings.NOTIFY_PLATFORM_PORTS = [8000]
    with pytest.raises(PermissionError, match="platform itself"):
        check_resolved("http://localhost:8000/hook")
    check_resolved("http://localhost:9876/hook")  # another local service: allowed


def test_the_sweep_tells_unacknowledged_alerts_offline_nodes_maintenance_and_rollouts_once(manager, admin_user, fleet, settings, queue):
    from django.contrib.auth.models import Group

    from edge_node.rollouts.models import ModelArtifact, Rollout

    escalation = Group.objects.create(name="night-shift-leads")
    lead = type(manager).objects.create_user("lead")
    lead.groups.add(escalation, Group.objects.get(name="facility_manager"))
    fleet.site.members.add(lead)
    subscribe(lead, target="lead@example.org", kinds=[const.ALERT_UNACKNOWLEDGED], name="escalations")
    mine = subscribe(manager, min_severity="info")
    admin_sub = subscribe(admin_user, target="admin@example.org", min_severity="info", name="admin")
    now = timezone.now()
    Alert.objects.create(site=fleet.site, asset=fleet.assets[0], severity="critical", title="Bearing hot", opened_at=now - timedelta(minutes=45))
    fleet.node.last_seen = now - timedelta(minutes=20)
    fleet.node.save()
    TwinState.objects.create(asset=fleet.assets[1], computed_at=now, health=0.2, rul_days_median=9, rul_days_low=6, rul_days_high=12)
    model = ModelArtifact.objects.create(name="anom", version="3", kind="anomaly", sha256="0" * 64, signature="s", size=1, file_path="/dev/null")
    Rollout.objects.create(model=model, target_site=fleet.site, proposer=admin_user)
    first = sweep(now)
    assert first["unacknowledged"] == 1 and first["offline"] >= 1 and first["maintenance"] == 1 and first["rollouts"] == 1
    again = sweep(now + timedelta(minutes=1))
    assert again["unacknowledged"] == again["offline"] == again["maintenance"] == again["rollouts"] == 0  # told once
    from notify.models import Pending

    lead_titles = list(Pending.objects.filter(subscription__user=lead).values_list("event__title", flat=True))
    assert len(lead_titles) == 1 and "not acknowledged for 45 min" in lead_titles[0]
    mine_titles = " | ".join(Pending.objects.filter(subscription=mine).values_list("event__title", flat=True))
    due = (now + timedelta(days=6)).date().isoformat()
    assert f"recommended by {due}" in mine_titles and "offline" in mine_titles
    assert "not acknowledged" not in mine_titles  # escalations are opt-in
    assert "second admin" not in mine_titles  # rollouts are told to admins only
    admins = " | ".join(Pending.objects.filter(subscription=admin_sub).values_list("event__title", flat=True))
    assert "waits for a second admin" in admins


def test_the_delivery_log_shows_each_message_and_replays_it(client, manager, fleet, receiver, queue, django_capture_on_commit_callbacks):
    sub = subscribe(manager, channel="webhook", target=receiver.url)
    record_event(const.ALERT_OPENED, title="Conveyor stalled", site_id=fleet.site.id)
    with django_capture_on_commit_callbacks(execute=True):
        flush(sub.id)
    queue.run()
    d = Delivery.objects.get()
    client.force_login(manager)
    page = client.get("/notifications/").content.decode()
    assert "Conveyor stalled" in page and 'data-state="sent"' in page
    detail = client.get(f"/notifications/deliveries/{d.id}/").content.decode()
    assert "Conveyor stalled" in detail and "Send again" in detail
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/notifications/deliveries/{d.id}/replay/")
    queue.run()
    assert len(receiver.received) == 2 and receiver.received[0].body != b""


def test_a_digest_collects_events_and_goes_out_once_per_period(manager, fleet, smtp, queue, django_capture_on_commit_callbacks):
    sub = subscribe(manager, mode=const.MODE_DIGEST, digest_every_s=3600)
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(3):
            record_event(const.ALERT_OPENED, title=f"filter {i} clogged", site_id=fleet.site.id)
    assert [s for s in queue.sent if s[0] == "notify.flush"] == []  # no immediate message
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        assert flush(sub.id, now=now) is not None
    queue.run()
    [mail] = smtp.inbox
    assert mail.subject.startswith("[warning] 3 events")
    record_event(const.ALERT_OPENED, title="filter 4 clogged", site_id=fleet.site.id)
    assert flush(sub.id, now=now + timedelta(minutes=30)) is None  # not due yet
    assert flush(sub.id, now=now + timedelta(minutes=61)) is not None
