"""`manage.py screenshots` (`make screenshots`): pictures of each role's journey for the README.

Starts the embedded stack the way `make demo` does, in a throwaway data folder on free ports
(migrate, load_demo, run_embedded), with the demo's RUL models trained first on fewer simulated
units (the demo's own lives and caps; `make demo` trains the full ones in the background), lets
the fleet warm up, then walks the facility manager's, the planner's and the admin's journeys
(web/journeys.py, the same ones the acceptance tests judge) in headless Chromium and saves what
each saw to docs/screenshots/. Everything it started is stopped at the end.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

CHROMIUM = os.environ.get("AIOT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MAX_PNG_BYTES = 600 * 1024
TYPES = ("centrifugal_pump", "hvac_unit", "induction_motor")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise CommandError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


class Command(BaseCommand):
    help = "Run the demo and save screenshots of each role's journey to docs/screenshots/."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--out", default=str(Path(settings.BASE_DIR) / "docs" / "screenshots"))
        parser.add_argument("--warmup", type=float, default=60.0, help="seconds the demo fleet runs before the journeys")
        parser.add_argument("--journeys", default="manager,planner,admin", help="which journeys, comma-separated")

    def handle(self, *args, **options) -> None:
        if not Path(CHROMIUM).exists():
            raise CommandError(f"needs Chromium at {CHROMIUM} (set AIOT_CHROMIUM)")
        out = Path(options["out"])
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="aiot-screenshots-") as var_dir:
            env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "MQTT_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "DJANGO_SETTINGS_MODULE")}
            env.update(AIOT_VAR_DIR=var_dir, PYTHONUNBUFFERED="1", TWIN_TRAIN_DEMO_MODELS="0")
            manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
            for cmd in (["migrate", "--noinput"], ["load_demo"]):
                self._run([*manage, *cmd], env)
            self.stdout.write("training the demo's RUL models (fewer simulated units than make demo's)")
            trainers = [subprocess.Popen([*manage, "train_rul", "--simulated", t, "--units", "8", "--trees", "40"], cwd=settings.BASE_DIR, env=env,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for t in TYPES]
            for trainer in trainers:
                _, err = trainer.communicate(timeout=1800)
                if trainer.returncode != 0:
                    raise CommandError(f"train_rul failed: {err.decode()[-2000:]}")
            http_port, mqtt_port = _free_port(), _free_port()
            log_path = Path(var_dir) / "demo.log"
            with open(log_path, "w") as log:
                proc = subprocess.Popen([*manage, "run_embedded", "--port", str(http_port), "--mqtt-port", str(mqtt_port)],
                                        cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                _wait(lambda: "Demo logins" in log_path.read_text() or proc.poll() is not None, 300, "the embedded stack")
                if proc.poll() is not None:
                    raise CommandError(f"the embedded stack exited: {log_path.read_text()[-2000:]}")
                db = sqlite3.connect(Path(var_dir) / "aiot.sqlite3", timeout=10)
                _wait(lambda: db.execute("SELECT COUNT(*) FROM twins_twinstate").fetchone()[0] >= 30, 180, "the twins")
                db.close()
                self.stdout.write(f"demo running on http://127.0.0.1:{http_port}/; letting the fleet run {options['warmup']:.0f} s")
                time.sleep(options["warmup"])
                self._shoot(f"http://127.0.0.1:{http_port}", out, options["journeys"].split(","))
            finally:
                # Ctrl-C as `make demo` expects; SIGTERM, then SIGKILL, if it does not stop.
                for sig, grace in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                    proc.send_signal(sig)
                    try:
                        proc.wait(timeout=grace)
                        break
                    except subprocess.TimeoutExpired:
                        self.stderr.write(f"the embedded stack did not stop within {grace} s of signal {sig.name}")

    def _run(self, cmd: list[str], env: dict[str, str]) -> None:
        done = subprocess.run(cmd, check=False, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise CommandError(f"{' '.join(cmd[2:])} failed: {done.stderr[-2000:]}")

    def _shoot(self, base: str, out: Path, which: list[str]) -> None:
        from playwright.sync_api import sync_playwright

        from web import journeys

        def shot(page, name: str) -> None:
            target = out / f"{name}.png"
            page.screenshot(path=str(target), full_page=False)
            size = target.stat().st_size
            note = "" if size <= MAX_PNG_BYTES else f" (over {MAX_PNG_BYTES // 1024} KB)"
            self.stdout.write(f"saved {target} ({size // 1024} KB){note}")

        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API keeps a loop in this thread
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for name in which:
                    self.stdout.write(f"walking the {name}'s journey")
                    getattr(journeys, f"{name.strip()}_journey")(browser, base, shot)
            finally:
                browser.close()
