"""The running demo, once per module: `make demo`'s steps in a scratch folder on free ports, with
small demo RUL models trained first (the demo's own lives and caps; fewer units and trees, so
that the suite does not wait minutes for them), then run_embedded until its twins and first
alerts are there (the warm-up a user gets in the first minutes)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import CHROMIUM, ROOT, free_port, headless_chromium, wait_until

TYPES = ("centrifugal_pump", "hvac_unit", "induction_motor")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        from tests.conftest import _missing

        _missing(f"needs Chromium at {CHROMIUM} (set AIOT_CHROMIUM)")
    var_dir = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "MQTT_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "DJANGO_SETTINGS_MODULE")}
    env.update(AIOT_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1", TWIN_TRAIN_DEMO_MODELS="0")
    manage = [sys.executable, str(ROOT / "manage.py")]
    for cmd in (["migrate", "--noinput"], ["load_demo"]):
        subprocess.run([*manage, *cmd], cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    # The three models side by side (one core each, the motor's history the longest to simulate).
    trainers = [subprocess.Popen([*manage, "train_rul", "--simulated", t, "--units", "6", "--trees", "20"], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for t in TYPES]
    for trainer in trainers:
        _, err = trainer.communicate(timeout=900)
        assert trainer.returncode == 0, err.decode()[-2000:]
    http_port, mqtt_port = free_port(), free_port()
    log_path = var_dir / "demo.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([*manage, "run_embedded", "--port", str(http_port), "--mqtt-port", str(mqtt_port)], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "Demo logins" in log_path.read_text() or proc.poll() is not None, 240, interval=0.5, what="the demo to start")
        assert proc.poll() is None, log_path.read_text()[-3000:]
        db = sqlite3.connect(var_dir / "aiot.sqlite3", timeout=10)
        try:
            wait_until(lambda: db.execute("SELECT COUNT(*) FROM twins_twinstate").fetchone()[0] >= 30, 120, interval=1, what="a twin of every asset")
            wait_until(lambda: db.execute("SELECT COUNT(*) FROM twins_alert WHERE state = 'open'").fetchone()[0] >= 1, 120, interval=1, what="the first alerts")
        finally:
            db.close()
        yield {"base": f"http://127.0.0.1:{http_port}", "var_dir": var_dir, "log": log_path}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(demo):
    # Module scope: Playwright's sync API keeps an event loop in this thread while it runs, which
    # later tests (asyncio.run, async_to_sync) must not find.
    with headless_chromium() as browser:
        yield browser


@pytest.fixture
def shots(tmp_path):
    """Pictures of the journey, kept with the test's files (make screenshots writes docs/screenshots)."""
    def shot(page, name: str) -> None:
        page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)

    return shot


def elapsed_since(started: float) -> str:
    return f"{time.monotonic() - started:.0f} s"
