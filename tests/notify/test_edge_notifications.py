"""What the edge tells reaches people like any alert: alerts raised from a node's own events
(anomalies it detected) go through the same notifications and the same preferences (sites,
minimum severity, digest), and a node gone quiet for N minutes is an email. Real SMTP server;
the tasks run as plain functions (tests/notify/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from ingest.models import EdgeEvent
from notify import const
from notify.models import Pending, Subscription
from notify.sources import sweep
from tests.factories import make_fleet, make_node, make_site
from twins.alerting import AlertEngine

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(manager):
    return make_fleet(2, members=[manager])


def subscribe(user, target: str, **kw) -> Subscription:
    return Subscription.objects.create(user=user, name=kw.pop("name", target), channel="email", target=target, **kw)


def edge_event(fleet, at: datetime, kind: str = "anomaly", severity: str = "warning") -> int:
    return EdgeEvent.objects.create(node_key=fleet.node.node_id, asset=fleet.assets[0], ts=at, received_at=at, kind=kind, severity=severity,
                                    message=f"{kind} score 0.93", data={"score": 0.93}).id


def subjects(smtp, to: str) -> list[str]:
    return [m.subject for m in smtp.inbox if m.to == [to]]


def test_alerts_from_edge_events_are_told_by_the_subscribers_choices(manager, fleet, smtp, queue, django_capture_on_commit_callbacks):
    subscribe(manager, "fm@example.org", min_severity="warning")
    subscribe(manager, "oncall@example.org", min_severity="critical")
    elsewhere = make_site(members=[manager])
    subscribe(manager, "elsewhere@example.org").sites.add(elsewhere)
    digest = subscribe(manager, "digest@example.org", mode=const.MODE_DIGEST)
    engine = AlertEngine(broadcast=False)
    t0 = datetime.now(UTC) - timedelta(minutes=10)

    def events(*ids):
        with django_capture_on_commit_callbacks(execute=True):
            engine.process([], list(ids))
        queue.run()

    asset = fleet.assets[0].name
    events(edge_event(fleet, t0))
    assert subjects(smtp, "fm@example.org") == [f"[warning] {asset}: Anomaly detected at the edge opened at {fleet.site.name}"]
    events(edge_event(fleet, t0 + timedelta(seconds=3)))  # the same anomaly again: counted on the alert, not news
    assert len(smtp.inbox) == 1
    events(edge_event(fleet, t0 + timedelta(seconds=9), severity="critical"))
    assert "escalated to critical" in subjects(smtp, "fm@example.org")[-1]
    assert len(subjects(smtp, "oncall@example.org")) == 1 and "escalated to critical" in subjects(smtp, "oncall@example.org")[0]
    events(edge_event(fleet, t0 + timedelta(seconds=60), kind="anomaly_cleared", severity="info"))
    assert [s.split(": ", 1)[1] for s in subjects(smtp, "fm@example.org")] == [
        f"Anomaly detected at the edge {verb} at {fleet.site.name}" for verb in ("opened", "escalated to critical", "cleared")
    ]
    assert "cleared" in subjects(smtp, "oncall@example.org")[-1] and len(subjects(smtp, "oncall@example.org")) == 2
    assert subjects(smtp, "elsewhere@example.org") == []  # another site's subscription
    assert subjects(smtp, "digest@example.org") == [] and Pending.objects.filter(subscription=digest, delivery__isnull=True).count() == 3


def test_a_rule_alert_taking_over_the_edge_alert_is_not_told_twice(manager, fleet, smtp, queue, django_capture_on_commit_callbacks):
    """The node's detector sees the fault first, the threshold rule fires later: one alert for the
    person on duty (twins/edge_alerts.py), so one 'opened' message, then an escalation."""
    from twins.models import Alert, AlertRule

    subscribe(manager, "fm@example.org")
    metric = fleet.metrics["temperature_c"]
    AlertRule.objects.create(metric=metric, warning_above=80.0, critical_above=100.0, hysteresis=2.0, min_duration_s=5.0)
    engine = AlertEngine(broadcast=False)
    t0 = datetime.now(UTC) - timedelta(minutes=10)

    def step(rows=(), events=()):
        with django_capture_on_commit_callbacks(execute=True):
            engine.process(list(rows), list(events))
        queue.run()

    def readings(values, start):
        return [(start + timedelta(seconds=i), fleet.assets[0].id, metric.id, v) for i, v in enumerate(values)]

    step(events=[edge_event(fleet, t0)])
    step(rows=readings([85.0] * 8, t0 + timedelta(seconds=1)))  # the rule opens at warning: the same alert
    [alert] = Alert.objects.all()
    assert alert.source == "rule" and alert.severity == "warning"
    assert [m.subject.split(": ", 1)[1].rsplit(" at ", 1)[0] for m in smtp.inbox] == ["Anomaly detected at the edge opened"]
    step(rows=readings([105.0] * 8, t0 + timedelta(seconds=20)))
    assert len(smtp.inbox) == 2 and "escalated to critical" in smtp.inbox[1].subject
    step(rows=readings([60.0] * 8, t0 + timedelta(seconds=40)))
    assert len(smtp.inbox) == 3 and "cleared" in smtp.inbox[2].subject


def test_an_edge_alert_that_went_quiet_is_told_cleared(manager, fleet, smtp, queue, django_capture_on_commit_callbacks):
    subscribe(manager, "fm@example.org")
    engine = AlertEngine(broadcast=False)
    with django_capture_on_commit_callbacks(execute=True):
        engine.process([], [edge_event(fleet, datetime.now(UTC) - timedelta(minutes=1), kind="fault")])
    queue.run()
    with django_capture_on_commit_callbacks(execute=True):
        engine.clear_quiet_edge_alerts(now=timezone.now() + timedelta(hours=1))
    queue.run()
    assert [m.subject.rsplit(" at ", 1)[0].split(": ", 1)[1] for m in smtp.inbox] == ["Fault detected at the edge opened", "Fault detected at the edge cleared"]


def test_a_node_offline_for_n_minutes_is_emailed_once_per_outage(manager, fleet, smtp, queue, settings, django_capture_on_commit_callbacks):
    settings.NOTIFY_NODE_OFFLINE_AFTER_S = 600
    subscribe(manager, "fm@example.org")
    now = timezone.now()
    for node in (fleet.node, fleet.other_node):
        node.last_seen = now - timedelta(minutes=3)  # quiet, but not for long enough
        node.save()
    foreign = make_node(make_site())  # a site the manager does not see
    foreign.last_seen = now - timedelta(hours=2)
    foreign.save()
    with django_capture_on_commit_callbacks(execute=True):
        sweep(now)
    queue.run()
    assert smtp.inbox == []
    later = now + timedelta(minutes=14)  # fleet.node: 17 min without a heartbeat
    fleet.other_node.last_seen = later
    fleet.other_node.save()
    for at in (later, later + timedelta(minutes=5)):  # the next sweeps: told once
        with django_capture_on_commit_callbacks(execute=True):
            sweep(at)
        queue.run()
    [mail] = smtp.inbox
    assert mail.subject == f"[warning] Edge node {fleet.node.node_id} offline for 17 min at {fleet.site.name}" and "/n/" in mail.body
    # back, then gone again: a new outage is a new message
    fleet.node.last_seen = later + timedelta(minutes=6)
    fleet.node.save()
    fleet.other_node.last_seen = later + timedelta(minutes=29)
    fleet.other_node.save()
    with django_capture_on_commit_callbacks(execute=True):
        sweep(later + timedelta(minutes=30))
    queue.run()
    assert len(smtp.inbox) == 2 and "offline for 24 min" in smtp.inbox[1].subject
