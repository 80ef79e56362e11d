"""The Celery app. On Redis in production; in-process (memory transport) in the embedded default."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")

app = Celery("aiot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
