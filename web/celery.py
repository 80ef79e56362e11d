"""The Celery app. On Redis in production; in-process (memory transport) in the embedded default."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")

app = Celery("aiot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# -- operations: task metrics, heartbeats, --metrics-port (web/metrics.py, web/heartbeats.py) ----
import time  # noqa: E402

from celery import bootsteps, signals  # noqa: E402
from click import Option  # noqa: E402

_task_started: dict[str, float] = {}
app.user_options["worker"].add(Option(("--metrics-port",), type=int, default=None, help="serve Prometheus metrics on 127.0.0.1:PORT/metrics"))


@signals.task_prerun.connect
def _task_prerun(task_id=None, **_):
    _task_started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_postrun(task_id=None, task=None, **_):
    from web import metrics

    started = _task_started.pop(task_id, None)
    if started is not None and task is not None:
        seconds = time.perf_counter() - started
        metrics.TASK_SECONDS.labels(task=task.name).observe(seconds)
        if task.name == "twins.refresh_twins":
            metrics.TWIN_REFRESH_SECONDS.observe(seconds)


@signals.task_failure.connect
def _task_failure(sender=None, **_):
    from web import metrics

    metrics.TASK_FAILURES.labels(task=getattr(sender, "name", "unknown")).inc()


class _Operations(bootsteps.StartStopStep):
    """The worker's heartbeat and, with --metrics-port, its metrics endpoint."""

    def __init__(self, parent, metrics_port=None, **options):
        super().__init__(parent, **options)
        self.metrics_port = metrics_port
        self.heartbeat = None

    def start(self, parent):
        from django.conf import settings

        if settings.CELERY_EMBEDDED:  # the embedded stack beats for the whole process
            return
        from web import heartbeats, metrics
        from web.gc_tuning import freeze_startup_heap

        self.heartbeat = metrics.start_process_ops(heartbeats.CELERY_WORKER, parent.hostname, self.metrics_port)
        freeze_startup_heap()  # before the pool starts: fewer long collections, and shared pages stay shared after fork

    def stop(self, parent):
        if self.heartbeat is not None:
            self.heartbeat.stop()


app.steps["worker"].add(_Operations)


@signals.beat_init.connect
def _beat_started(sender=None, **_):
    from web import heartbeats

    _beat_heartbeat.append(heartbeats.Heartbeat(heartbeats.BEAT, "main").start())


_beat_heartbeat: list = []
