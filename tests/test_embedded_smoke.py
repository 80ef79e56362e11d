"""The embedded default, started the way `make demo` starts it, on free ports and a fresh
data folder, with no DATABASE_URL, REDIS_URL or MQTT_URL: the simulated fleet's readings
are stored, a user logs in over HTTP and sees them, and Ctrl-C stops everything."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

from tests.helpers import ROOT, free_port, wait_until

pytestmark = pytest.mark.slow


def embedded_env(var_dir) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "MQTT_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")}
    env["AIOT_VAR_DIR"] = str(var_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_it_runs_the_demo_stack_and_shows_fleet_readings(tmp_path):
    env = embedded_env(tmp_path)
    for cmd in (["migrate", "--noinput"], ["load_demo"]):
        subprocess.run([sys.executable, "manage.py", *cmd], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    http_port, mqtt_port = free_port(), free_port()
    log_path = tmp_path / "demo.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_embedded", "--port", str(http_port), "--mqtt-port", str(mqtt_port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "Demo logins" in log_path.read_text() or proc.poll() is not None, 60, what="the demo banner")
        assert proc.poll() is None, log_path.read_text()
        assert f"http://127.0.0.1:{http_port}/" in log_path.read_text()

        db = sqlite3.connect(tmp_path / "aiot.sqlite3", timeout=10)
        wait_until(lambda: db.execute("SELECT COUNT(DISTINCT asset_id) FROM ingest_telemetry").fetchone()[0] >= 20, 60, what="readings of the simulated fleet")
        asset_id, value = db.execute(
            "SELECT lv.asset_id, lv.value FROM ingest_latestvalue lv JOIN twins_metric m ON m.id = lv.metric_id "
            "WHERE m.key = 'temperature_c' ORDER BY lv.asset_id LIMIT 1"
        ).fetchone()
        db.close()

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        base = f"http://127.0.0.1:{http_port}"
        login_page = opener.open(f"{base}/login/", timeout=10).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page).group(1)
        form = urllib.parse.urlencode({"username": "manager", "password": "manager-demo", "csrfmiddlewaretoken": token, "next": "/"}).encode()
        fleet_page = opener.open(urllib.request.Request(f"{base}/login/", data=form, headers={"Referer": f"{base}/login/"}), timeout=10).read().decode()
        assert "North Plant" in fleet_page and "South Campus" in fleet_page
        asset_page = opener.open(f"{base}/assets/{asset_id}/", timeout=10).read().decode()
        assert "Winding temperature" in asset_page or "Bearing temperature" in asset_page
        shown = re.search(r'<tr data-metric="temperature_c">.*?class="value[^"]*">([^<]+)<', asset_page, re.S).group(1)
        assert shown.strip() not in ("", "–")
        assert abs(float(shown) - value) < 50  # the page shows a current reading of that asset
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("the embedded stack did not stop within 30 s of Ctrl-C") from None
    assert proc.returncode == 0, log_path.read_text()[-3000:]
    assert "stopped." in log_path.read_text()
