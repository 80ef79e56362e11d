"""The embedded stack's twin refresher: a small thread that (once) trains the demo asset types'
missing RUL models in a low-priority subprocess, then refreshes every twin every
TWIN_REFRESH_INTERVAL_S. In production celery beat runs twins.refresh_twins instead.

It never runs inside the ingest worker: a refresh reads the telemetry store on its own
connection and its own thread, so ingest batches are not delayed by it.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)

MAX_FAILURE_BACKOFF_S = 300.0


class TwinRefresher:
    def __init__(self, interval_s: float, train_demo_models: bool, time_scale: float = 1.0) -> None:
        self.interval_s = interval_s
        self.time_scale = time_scale
        self.train_demo_models = train_demo_models
        self.stopping = threading.Event()
        self.child: subprocess.Popen | None = None
        self.failures = 0
        self.refreshes = 0

    def stop(self) -> None:
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()

    def run(self) -> None:
        trainer = threading.Thread(target=self._train_missing, name="twin-models", daemon=True) if self.train_demo_models else None
        if trainer is not None:
            trainer.start()
        while not self.stopping.is_set():
            delay = self.interval_s
            try:
                self.step()
                self.failures = 0
            except Exception:
                self.failures += 1
                delay = min(MAX_FAILURE_BACKOFF_S, self.interval_s * 2**self.failures)
                log.exception("twin refresh failed (%d in a row), next try in %.0f s", self.failures, delay)
            finally:
                close_old_connections()
            self.stopping.wait(delay)

    def step(self) -> int:
        from twins.twin_refresh import refresh_twins

        result = refresh_twins(time_scale=self.time_scale)
        self.refreshes += 1
        if result.refreshed:
            log.debug("twins: %d refreshed in %.3f s", result.refreshed, result.seconds)
        return result.refreshed

    def _train_missing(self) -> None:
        """Demo models, one asset type at a time, in a niced subprocess (its CPU never competes
        with ingest or the web server at equal priority; killed on stop)."""
        from twins.models import Asset
        from twins.rul_training import missing_demo_types

        try:
            types = [t for t in missing_demo_types() if Asset.objects.filter(asset_type__key=t).exists()]
        finally:
            close_old_connections()
        for asset_type in types:
            if self.stopping.is_set():
                return
            log.info("training the demo RUL model of %s in the background", asset_type)
            cmd = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "train_rul", "--simulated", asset_type]
            started = time.monotonic()
            if shutil.which("nice"):
                cmd = ["nice", "-n", "15", *cmd]
            # its own session: Ctrl-C in the terminal reaches the demo, which stops this child itself
            self.child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
            if self.stopping.is_set():  # stop() ran between the check above and the start
                self.child.terminate()
            output, _ = self.child.communicate()
            code = self.child.returncode
            self.child = None
            if self.stopping.is_set():
                return
            if code == 0:
                log.info("demo RUL model of %s ready after %.0f s: %s", asset_type, time.monotonic() - started, output.strip().splitlines()[-1])
            else:
                log.error("training the demo RUL model of %s failed (exit %s): %s", asset_type, code, output[-2000:])


def start_refresher(
    interval_s: float | None = None, train_demo_models: bool | None = None, time_scale: float = 1.0,
) -> tuple[TwinRefresher, threading.Thread]:
    """``time_scale``: the simulated fleet's speed-up (operating seconds per wall-clock second)."""
    refresher = TwinRefresher(
        settings.TWIN_REFRESH_INTERVAL_S if interval_s is None else interval_s,
        settings.TWIN_TRAIN_DEMO_MODELS if train_demo_models is None else train_demo_models,
        time_scale,
    )
    thread = threading.Thread(target=refresher.run, name="twin-refresh", daemon=True)
    thread.start()
    return refresher, thread
