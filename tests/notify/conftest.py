from __future__ import annotations

import pytest
from django.test import TestCase

from tests.notify.receivers import SmtpServer, WebhookReceiver


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def smtp(settings):
    with SmtpServer() as server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
        yield server


@pytest.fixture
def receiver():
    r = WebhookReceiver().start()
    yield r
    r.stop()


class Queue:
    """Tasks sent by name (app.send_task), run here as plain functions, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list, float | None]] = []

    def send_task(self, name, args=None, countdown=None, **kwargs):
        self.sent.append((name, list(args or []), countdown))

    def run(self, rounds: int = 10) -> list[tuple[str, list, float | None]]:
        from notify import tasks

        by_name = {"notify.alert_events": tasks.alert_events_task, "notify.flush": tasks.flush_task, "notify.deliver": tasks.deliver_task}
        ran = []
        for _ in range(rounds):
            batch, self.sent = self.sent, []
            if not batch:
                break
            for name, args, countdown in batch:
                if name in by_name:
                    # after-commit work of the task runs too (the test's transaction never commits)
                    with TestCase.captureOnCommitCallbacks(execute=True):
                        by_name[name](*args)
                    ran.append((name, args, countdown))
        return ran


@pytest.fixture
def queue(monkeypatch):
    from web.celery import app

    q = Queue()
    monkeypatch.setattr(app, "send_task", q.send_task)
    return q
