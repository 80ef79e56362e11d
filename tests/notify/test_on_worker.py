"""End to end on a real Celery worker over Redis: an alert the engine opens reaches a real SMTP
server and a real webhook receiver; the receiver is down at first and still gets it (retries
with backoff on the worker)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from notify import const
from notify.models import Delivery, Subscription
from notify.signing import verify_body
from tests.factories import make_fleet
from tests.helpers import celery_worker_process, database_url_for_subprocess, wait_until
from tests.notify.receivers import SmtpServer, WebhookReceiver
from twins.alerting import AlertEngine
from twins.models import AlertRule

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(redis_url, settings):
    with SmtpServer() as smtp, celery_worker_process(
        None, redis_url, database_url_for_subprocess(), 4, pool="threads", name=f"notify-{uuid.uuid4().hex[:8]}",
        drop_env=("EMAIL_BACKEND",), extra_env={
            "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp.port), "NOTIFY_COALESCE_S": "0.2", "NOTIFY_RETRY_BASE_S": "0.5",
            "NOTIFY_RETRY_MAX_S": "1", "PLATFORM_PUBLIC_URL": "https://aiot.example.org"}):
        yield smtp


def test_it_delivers_a_real_alert_by_email_and_webhook_from_a_worker(worker, manager, settings):
    smtp = worker
    fleet = make_fleet(1, members=[manager])
    AlertRule.objects.create(metric=fleet.metrics["vib_rms"], warning_above=7.1, critical_above=11.0, min_duration_s=0)
    receiver = WebhookReceiver()  # down: connection refused until started below
    Subscription.objects.create(user=manager, name="mail", channel="email", target="fm@example.org")
    hook = Subscription.objects.create(user=manager, name="cmms", channel="webhook", target=receiver.url)
    engine = AlertEngine(broadcast=False)
    t0 = time.time()
    engine.process([(datetime.now(UTC) - timedelta(seconds=1), fleet.assets[0].id, fleet.metrics["vib_rms"].id, 12.5)])
    [mail] = wait_until(lambda: smtp.inbox, 30, what="the email")
    assert "[critical]" in mail.subject and "vib_rms" in mail.subject and mail.at - t0 < 10
    wait_until(lambda: Delivery.objects.filter(subscription=hook, attempts__gte=2).exists(), 30, what="failed webhook attempts")
    receiver.start()
    try:
        [got] = wait_until(lambda: receiver.received, 30, what="the webhook after the receiver came back")
        ts = int(got.headers[const.HEADER_TIMESTAMP])
        assert verify_body(hook.secret, ts, got.body, got.headers[const.HEADER_SIGNATURE])
        assert got.json["events"][0]["kind"] == const.ALERT_OPENED
        d = wait_until(lambda: Delivery.objects.filter(subscription=hook, state=const.SENT).first(), 10, what="the delivery marked sent")
        assert d.attempts >= 3
    finally:
        receiver.stop()
