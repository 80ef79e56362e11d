"""The notification sweep on a thread, for the embedded stack (production: celery beat runs
the notify.sweep task every NOTIFY_SWEEP_INTERVAL_S)."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)


def start_sweeper() -> tuple[threading.Event, threading.Thread]:
    from notify.sources import sweep

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(settings.NOTIFY_SWEEP_INTERVAL_S):
            close_old_connections()
            try:
                sweep()
            except Exception:  # one failed pass is logged; the next one runs on time
                log.exception("notification sweep failed")
        close_old_connections()

    thread = threading.Thread(target=loop, name="notify-sweep", daemon=True)
    thread.start()
    return stop, thread
