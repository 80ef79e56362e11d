"""The embedded default, started the way `make demo` starts it, on free ports and a fresh
data folder, with no DATABASE_URL, REDIS_URL or MQTT_URL: the simulated fleet's readings
are stored, a user logs in over HTTP and sees them, the live socket streams them, and Ctrl-C
stops everything."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
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


async def first_update(url: str, origin: str, session: str, asset_id: int) -> tuple[float, dict]:
    from websockets.asyncio.client import connect

    async with connect(url, origin=origin, additional_headers={"Cookie": f"sessionid={session}"}, open_timeout=10) as ws:
        await ws.send(json.dumps({"action": "subscribe", "asset": asset_id}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "subscribed"
        started = time.monotonic()
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame["type"] == "updates" and any(m["type"] == "asset.update" for m in frame["messages"]):
                return time.monotonic() - started, frame


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

        # The live socket of the same process gets the fleet's updates (ingest thread ->
        # in-memory channel layer -> daphne's loop) within a couple of seconds.
        session = next(c.value for c in jar if c.name == "sessionid")
        frame_at, frame = asyncio.run(first_update(f"ws://127.0.0.1:{http_port}/ws/live/", base, session, asset_id))
        assert frame_at < 3.0, f"first live update after {frame_at:.1f} s"
        assert any(m["type"] == "asset.update" and m["asset"] == asset_id for m in frame["messages"])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("the embedded stack did not stop within 30 s of Ctrl-C") from None
    assert proc.returncode == 0, log_path.read_text()[-3000:]
    assert "stopped." in log_path.read_text()


def test_it_points_everything_in_the_process_at_the_broker_port_it_runs_on(settings):
    """`run_embedded --mqtt-port N`: the rollout task and the enrollment answer use port N too."""
    from edge_node.services import node_broker_url, platform_broker_url
    from web.embedded import EmbeddedStack

    settings.MQTT_EMBEDDED = True
    stack = EmbeddedStack(mqtt_port=free_port())
    stack.use_broker_port()
    assert platform_broker_url().endswith(f"127.0.0.1:{stack.mqtt_port}")
    assert node_broker_url() == f"mqtt://127.0.0.1:{stack.mqtt_port}"
