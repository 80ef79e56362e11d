"""`make test` on two lanes: the suite split in two pytest processes that run side by side.

Most of the suite's time is spent waiting on real processes (brokers, workers, agents,
Chromium), so two lanes on a 2-core machine finish in a little more than half the time. Each
lane has services of its own, so that no test sees another lane's traffic:

- lane 1 uses the services it was given (DATABASE_URL, REDIS_URL, MQTT_TEST_URL);
- lane 2 gets its own PostgreSQL test database (the database name with ``_lane2``), the next
  Redis database index, its own channel-layer prefix, and a private Mosquitto started here
  from the shipped broker settings (when lane 1 has an MQTT broker to test against).

Run: ``python -m tests.lanes [pytest options]``. Options naming test paths, or
``AIOT_TEST_LANES=1``, run one plain pytest instead. The exit status is the worst lane's; a lane
that selected no test (exit 5) counts as passed when the other lane ran some.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent

# Balanced by the time each part took in full runs (slowest: the acceptance demo, deployment,
# ingest and field protocols in lane 1; RUL training, scenarios, browser and twins in lane 2).
LANE_1 = ["tests/acceptance", "tests/deploy", "tests/ingest", "tests/field", "tests/agent", "tests/fleet_security",
          "tests/test_embedded_smoke.py", "tests/test_production_guard.py", "tests/test_settings.py"]
LANE_2 = ["tests/api", "tests/notify", "tests/browser", "tests/rollouts", "tests/rul", "tests/scenarios", "tests/sim", "tests/timescale",
          "tests/twins", "tests/web"]
NO_TESTS = 5  # pytest's exit status when a selection is empty


def unassigned() -> list[str]:
    """Test modules and folders in neither lane (a test added in a new folder must not be lost)."""
    known = set(LANE_1) | set(LANE_2)
    found = [p for p in sorted((ROOT / "tests").iterdir())
             if (p.is_dir() and any(p.rglob("test_*.py"))) or (p.is_file() and p.name.startswith("test_") and p.suffix == ".py")]
    return [str(p.relative_to(ROOT)) for p in found if str(p.relative_to(ROOT)) not in known]


def names_paths(args: list[str]) -> bool:
    return any(not a.startswith("-") and (ROOT / a.split("::")[0]).exists() for a in args)


def lane_2_env(base: dict[str, str], mqtt_url: str | None) -> dict[str, str]:
    env = dict(base)
    db = urlsplit(env.get("DATABASE_URL", ""))
    if db.scheme in ("postgres", "postgresql"):
        env["DATABASE_URL"] = urlunsplit((db.scheme, db.netloc, (db.path.rstrip("/") or "/test") + "_lane2", db.query, ""))
    redis = urlsplit(env.get("REDIS_URL", ""))
    if redis.scheme:
        index = int(redis.path.strip("/") or 0)
        env["REDIS_URL"] = urlunsplit((redis.scheme, redis.netloc, f"/{(index + 1) % 16}", redis.query, ""))
    env["CHANNEL_LAYER_PREFIX"] = env.get("CHANNEL_LAYER_PREFIX", "asgi") + "_lane2"
    if mqtt_url:
        env["MQTT_TEST_URL"] = mqtt_url
    return env


def ensure_database(url: str, base_url: str) -> None:
    """Create lane 2's database beside lane 1's (the test database is made from its name)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        return
    import psycopg

    name = parts.path.strip("/")
    try:
        with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:  # lane 2's PostgreSQL tests then say what is missing
        print(f"tests/lanes.py: could not create database {name}: {exc}", file=sys.stderr)


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 1883), timeout=1.0):
            return True
    except OSError:
        return False


def main(args: list[str]) -> int:
    pytest = [sys.executable, "-m", "pytest"]
    if os.environ.get("AIOT_TEST_LANES") == "1" or names_paths(args):
        return subprocess.call([*pytest, *args], cwd=ROOT)
    left = unassigned()
    if left:
        print(f"tests/lanes.py: add {', '.join(left)} to a lane", file=sys.stderr)
        return 2
    from tests.services import PrivateMosquitto

    work = Path(tempfile.mkdtemp(prefix="aiot-lanes-"))
    broker = None
    mqtt_url = os.environ.get("MQTT_TEST_URL", "mqtt://127.0.0.1:1883")
    if reachable(mqtt_url):  # lane 1 tests MQTT against a real broker: lane 2 gets one of its own
        broker = PrivateMosquitto(work / "mosquitto")
        broker.start()
        lane2_mqtt = broker.url
    else:
        lane2_mqtt = None
    lanes = [("lane 1", dict(os.environ), LANE_1), ("lane 2", lane_2_env(dict(os.environ), lane2_mqtt), LANE_2)]
    if os.environ.get("DATABASE_URL"):
        ensure_database(lanes[1][1]["DATABASE_URL"], os.environ["DATABASE_URL"])
    procs = []
    try:
        for name, env, paths in lanes:
            out = open(work / f"{name.replace(' ', '')}.log", "w+b")  # noqa: SIM115 - read back below
            cmd = [*pytest, *args, "--basetemp", str(work / f"{name.replace(' ', '')}-tmp"), *paths]
            procs.append((name, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT), out, time.monotonic()))
        print(f"tests: two lanes side by side (logs in {work}); each lane's output follows when it ends", flush=True)
        codes: dict[str, int] = {}
        pending = list(procs)
        while pending:
            for item in list(pending):
                name, proc, out, started = item
                if proc.poll() is None:
                    continue
                pending.remove(item)
                codes[name] = proc.returncode
                out.seek(0)
                sys.stdout.write(f"\n======== {name} (exit {proc.returncode}, {time.monotonic() - started:.0f} s) ========\n")
                sys.stdout.write(out.read().decode(errors="replace"))
                sys.stdout.flush()
                out.close()
            time.sleep(0.5)
    except KeyboardInterrupt:
        for _, proc, _, _ in procs:
            proc.terminate()
        raise
    finally:
        if broker is not None:
            broker.stop()
    ran = [c for c in codes.values() if c != NO_TESTS]
    if not ran:
        return NO_TESTS
    worst = max(ran)
    print(f"\ntests: {', '.join(f'{n} exit {c}' for n, c in codes.items())}", flush=True)
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
