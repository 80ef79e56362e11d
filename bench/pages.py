"""How fast the pages a user opens are ready, in a real browser (`make bench-pages`).

Sets up the demo the way `make demo` does in a scratch folder (migrate, load_demo, a week of the
simulated fleet's history: 24 h and more of data behind every chart, a small RUL model for the
pumps so their twins show), starts the embedded platform with its live fleet on free ports, and
opens each page in headless Chromium as the demo admin: first with an empty cache (cold), then
RUNS more times (warm: the browser keeps Plotly, as it does for a user moving between pages).

"Ready" means what a user waits for: the page loaded and every chart on the screen drawn
(Plotly's SVG inside each chart box that is in the viewport; the asset page draws the charts
below the fold when the browser is idle or when they are scrolled to), measured from the
navigation's start. The last line is JSON:
{"pages_ready_ms": {page: median warm ms}, "cold_ms": {...}, "target_ms": 500, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

TARGET_MS = 500.0
# Everything that should be on screen before the page counts as ready.
READY = """() => {
  if (document.readyState !== "complete") return false;
  const boxes = [...document.querySelectorAll(".chart, .chart-box, #twin-chart")].filter((el) => {
    if (el.hidden || el.offsetParent === null) return false;
    const r = el.getBoundingClientRect();
    return r.top < window.innerHeight && r.bottom > 0;
  });
  if (!boxes.every((el) => el.querySelector(".main-svg"))) return false;
  return performance.now();
}"""


def run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:3])} failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="warm loads per page")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"needs Chromium at {CHROMIUM} (set AIOT_CHROMIUM)")
    var_dir = Path(tempfile.mkdtemp(prefix="aiot-bench-pages-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "MQTT_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")}
    env.update(AIOT_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1", TWIN_TRAIN_DEMO_MODELS="0")
    manage = [sys.executable, str(ROOT / "manage.py")]
    print(f"setting up the demo in {var_dir}", flush=True)
    run([*manage, "migrate", "--noinput"], env)
    run([*manage, "load_demo"], env)
    run([*manage, "train_rul", "--simulated", "centrifugal_pump", "--units", "6", "--trees", "20"], env)
    http_port, mqtt_port = free_port(), free_port()
    log_path = var_dir / "demo.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([*manage, "run_embedded", "--port", str(http_port), "--mqtt-port", str(mqtt_port)], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 180
        while "Demo logins" not in log_path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the demo did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        urllib.request.urlopen(f"{base}/healthz", timeout=10).read()
        time.sleep(20)  # the fleet's first live minute, the twins' first refresh
        results = measure(base, args.runs)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not args.keep:
            import shutil

            shutil.rmtree(var_dir, ignore_errors=True)
    print(json.dumps(results))


def measure(base: str, runs: int) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto(f"{base}/login/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", "admin-demo")
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        pump = page.locator(".tile", has_text="Feed pump 2").first.get_attribute("href")
        pages = {"fleet": "/", "asset": pump, "asset_24h": f"{pump}?range=24h", "asset_7d": f"{pump}?range=7d", "alerts": "/alerts/",
                 "nodes": "/nodes/", "scenarios": "/scenarios/", "models": "/models/rul/", "rollouts": "/rollouts/", "rules": "/rules/"}
        session = context.storage_state()
        cold, warm = {}, {}
        for name, path in pages.items():
            # Cold: a new browser context (logged in, empty cache) for this one load.
            fresh_context = browser.new_context(viewport={"width": 1400, "height": 900}, storage_state=session)
            fresh = fresh_context.new_page()
            fresh.goto(f"{base}{path}", wait_until="commit")
            cold[name] = round(fresh.wait_for_function(READY, polling="raf", timeout=30000).json_value(), 1)
            fresh_context.close()
            page.goto(f"{base}{path}")  # fill the cache
            times = []
            for _ in range(runs):
                page.goto(f"{base}{path}", wait_until="commit")
                times.append(page.wait_for_function(READY, polling="raf", timeout=30000).json_value())
            warm[name] = round(statistics.median(times), 1)
            print(f"{name:10s} {path:28s} cold {cold[name]:7.1f} ms   warm median {warm[name]:7.1f} ms (of {runs})", flush=True)
        browser.close()
    return {"pages_ready_ms": warm, "cold_ms": cold, "target_ms": TARGET_MS, "runs": runs,
            "over_target": sorted(k for k, v in warm.items() if v > TARGET_MS), "load_avg_1m": round(os.getloadavg()[0], 2)}


if __name__ == "__main__":
    main()
