"""`manage.py screenshots` (`make screenshots`): PNGs of the main pages for the README.

Starts the embedded stack the way `make demo` does, in a throwaway data folder on free ports
(migrate, load_demo, a few demo alert rules, run_embedded), lets the simulated fleet run,
logs in as the demo facility manager in headless Chromium and saves fleet.png, asset.png,
alerts.png and nodes.png to docs/screenshots/. Everything it started is stopped at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

CHROMIUM = os.environ.get("AIOT_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1440, "height": 900}
MAX_PNG_BYTES = 300 * 1024

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise CommandError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


class Command(BaseCommand):
    help = "Run the embedded demo briefly and save screenshots of the main pages to docs/screenshots/."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--out", default=str(Path(settings.BASE_DIR) / "docs" / "screenshots"))
        parser.add_argument("--warmup", type=float, default=20.0, help="seconds the demo fleet runs before the screenshots")
        parser.add_argument("--user", default="manager")
        parser.add_argument("--password", default="manager-demo")

    def handle(self, *args, **options) -> None:
        if not Path(CHROMIUM).exists():
            raise CommandError(f"needs Chromium at {CHROMIUM} (set AIOT_CHROMIUM)")
        out = Path(options["out"])
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="aiot-screenshots-") as var_dir:
            env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "MQTT_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "DJANGO_SETTINGS_MODULE")}
            env.update(AIOT_VAR_DIR=var_dir, PYTHONUNBUFFERED="1")
            manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
            for cmd in (["migrate", "--noinput"], ["load_demo"]):
                done = subprocess.run([*manage, *cmd], check=False, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=180)
                if done.returncode != 0:
                    raise CommandError(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
            http_port, mqtt_port = _free_port(), _free_port()
            log_path = Path(var_dir) / "demo.log"
            with open(log_path, "w") as log:
                proc = subprocess.Popen(
                    [*manage, "run_embedded", "--port", str(http_port), "--mqtt-port", str(mqtt_port)],
                    cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                )
            try:
                _wait(lambda: "Demo logins" in log_path.read_text() or proc.poll() is not None, 90, "the embedded stack")
                if proc.poll() is not None:
                    raise CommandError(f"the embedded stack exited: {log_path.read_text()[-2000:]}")
                self.stdout.write(f"demo running on http://127.0.0.1:{http_port}/; letting the fleet run {options['warmup']:.0f} s")
                time.sleep(options["warmup"])
                self._shoot(f"http://127.0.0.1:{http_port}", out, options["user"], options["password"])
            finally:
                # Ctrl-C as `make demo` expects; SIGTERM, then SIGKILL, if it does not stop.
                for sig, grace in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                    proc.send_signal(sig)
                    try:
                        proc.wait(timeout=grace)
                        break
                    except subprocess.TimeoutExpired:
                        self.stderr.write(f"the embedded stack did not stop within {grace} s of signal {sig.name}")

    def _shoot(self, base: str, out: Path, user: str, password: str) -> None:
        from playwright.sync_api import sync_playwright

        urllib.request.urlopen(f"{base}/healthz", timeout=10).read()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            try:
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(f"{base}/login/")
                page.fill("input[name=username]", user)
                page.fill("input[name=password]", password)
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/")
                # The asset page shows the asset with the most severe alert, if any.
                asset_href = page.locator(".tile").first.get_attribute("href")
                for health in ("critical", "warning"):
                    tiles = page.locator(f".tile.health-{health}")
                    if tiles.count():
                        asset_href = tiles.first.get_attribute("href")
                        break
                shots = (("alerts", "/alerts/", False), ("asset", f"{asset_href}?range=15m", True), ("nodes", "/nodes/", False), ("fleet", "/", True))
                for name, path, full in shots:
                    page.goto(f"{base}{path}")
                    page.wait_for_selector("#live-badge[data-state=live]", timeout=10000)
                    page.wait_for_timeout(2500)  # a few live updates
                    target = out / f"{name}.png"
                    page.screenshot(path=str(target), full_page=full)
                    size = target.stat().st_size
                    note = "" if size <= MAX_PNG_BYTES else f" (over {MAX_PNG_BYTES // 1024} KB)"
                    self.stdout.write(f"saved {target} ({size // 1024} KB){note}")
            finally:
                browser.close()
