"""Benchmark of what-if scenarios through Celery on Redis, end to end: a site of 500 assets x
1,000 replications x one year (--assets 50 for the former headline), from submit (start_run)
to the stored result, with one worker process (`celery worker -c 1`) and with two (`-c 2`). The
scale-out ratio targets >= 1.7x on two cores, and under 10 s with two workers. Both runs must
store the identical result. The site is groups of 50 assets of one type with 3 crews and 5
spares each (bench/whatif_engine.py); the stored result includes the recommendation check,
which runs as a second chord of chunks, beside the merge, once the simulation's are in.

The site's 50 twins are calibrated from real run-to-failure lives (NASA C-MAPSS FD001, as in
bench/whatif_engine.py: one flight cycle = 40 operating hours); the scenario is that bench's
headline one (more load, two shifts, RUL-based), without the baseline variant. Each worker
count gets one untimed warm-up run, then the timed runs alternate between the two workers and
the best of --repeats counts; each run prints where its time went (queue wait, simulation
summed over chunks, planning the check, the check summed over its chunks beside the merge of
all but the check, completing the merge with the check and storing it): when the summed
simulation time doubles with two workers, the cores were busy with other work. Planning the
check and completing the merge are the serial part; it is printed on its own, as it depends
less on other load.

Scratch PostgreSQL database created and dropped (BENCH_PG_URL, default
postgres://postgres@127.0.0.1:5432/postgres), or SQLite in a temp dir when PostgreSQL is not
reachable; Redis at BENCH_REDIS_URL (default redis://127.0.0.1:6379/0) on a queue of its own.
Prints the figures and the load average; the last line is one JSON object.

    .venv/bin/python bench/whatif.py [--assets 50] [--replications 1000] [--chunks 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DB_NAME = f"bench_whatif_{os.getpid()}"  # one per bench process: two benches never share one
QUEUE = f"bench-whatif-{uuid.uuid4().hex[:8]}"
RUN_TIMEOUT_S = 300.0


def scratch_database(tmp: Path) -> tuple[str, bool]:
    """A fresh database URL, and whether it is PostgreSQL (to drop it at the end)."""
    import psycopg

    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DB_NAME}")
        return urlunsplit(urlsplit(PG_URL)._replace(path=f"/{DB_NAME}")), True
    except (psycopg.Error, OSError) as exc:  # no PostgreSQL here: the same bench on SQLite (WAL)
        print(f"PostgreSQL not usable ({exc}); using SQLite in {tmp}")
        return f"sqlite:///{tmp / 'bench.sqlite3'}", False


def drop_database() -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def setup_django(database_url: str, var_dir: Path) -> None:
    os.environ.update(DATABASE_URL=database_url, REDIS_URL=REDIS_URL, AIOT_VAR_DIR=str(var_dir), LOG_LEVEL="WARNING",
                      DJANGO_SETTINGS_MODULE="web.settings")
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CELERY_TASK_ALWAYS_EAGER"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.SCENARIO_QUEUE = QUEUE
    call_command("migrate", verbosity=0)


def make_site(assets: int, replications: int) -> int:
    """A site of `assets` twins from C-MAPSS lives and the headline scenario; its id."""
    from django.utils import timezone
    from whatif_engine import cmapss_fleet, headline_scenario

    from twins.models import Asset, AssetType, Site, TwinState
    from twins.scenarios.services import create_scenario

    engine = headline_scenario(assets, replications)
    site = Site.objects.create(key=f"bench-{uuid.uuid4().hex[:6]}", name="Bench site")
    kinds: dict[str, AssetType] = {}
    rows = []
    for init in cmapss_fleet(assets):
        kind = kinds.get(init.asset_type)
        if kind is None:  # one type per group of 50 (its own spare pool), as in the engine bench
            kind = kinds[init.asset_type] = AssetType.objects.create(key=f"turbofan-{uuid.uuid4().hex[:6]}", name="Turbofan")
        asset = Asset.objects.create(key=f"{site.key}-{init.asset_id}", name=init.name, site=site, asset_type=kind,
                                     hours_per_day=engine.hours_per_day)
        TwinState.objects.create(asset=asset, computed_at=timezone.now(), health=init.health, rul_unit="hours",
                                 rul_median=init.rul.median, rul_low=init.rul.low, rul_high=init.rul.high)
        rows.append(asset)
    policy = {"name": engine.policy.name, "lead_time_hours": engine.policy.lead_time_hours}
    params = {name: getattr(engine, name) for name in (
        "load_factor", "speed_factor", "hours_per_day", "days_per_week", "ambient_delta_c", "crew_size", "spare_stock",
        "spare_lead_time_days", "horizon_days", "replications", "seed", "pm_cost", "cm_cost", "downtime_cost_per_hour")}
    scenario = create_scenario(None, name=engine.name, site=site, assets=rows, params={**params, "policy": policy}, compare_baseline=False)
    return scenario.id


class Worker:
    """A real `celery -A web worker -P prefork -c N` on the bench's own queue."""

    def __init__(self, processes: int, log_dir: Path) -> None:
        self.queue = f"{QUEUE}-c{processes}"
        self.name = f"{self.queue}@bench"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.log_path = log_dir / f"worker-c{processes}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            [str(ROOT / ".venv/bin/celery"), "-A", "web", "worker", "-P", "prefork", "-c", str(processes), "--without-gossip",
             "--without-mingle", "--without-heartbeat", "-Q", self.queue, "-n", self.name, "--loglevel", "WARNING"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        from web.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_path.read_text()[-2000:]}")
            if app.control.ping(destination=[self.name], timeout=0.5):
                return
        raise RuntimeError(f"worker {self.name} not ready after {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.close()


def breakdown(run_id: int) -> dict[str, float]:
    """Where the time went: the simulation's chunks (summed); the gap between the last of them
    and the second phase's first start (chord callback: plan the check, queue its chord); the
    second phase, the check's chunks and each variant's merge but the check side by side
    (summed); and the completion with the check and the store after the last of them. The two
    gaps are the run's serial part: no second worker shortens them."""
    from django.db.models import Max, Sum

    from twins.scenarios.models import ScenarioChunk, ScenarioRun

    run = ScenarioRun.objects.only("started_at", "finished_at", "created_at").get(id=run_id)
    chunks = ScenarioChunk.objects.filter(run_id=run_id)
    second = chunks.filter(phase__in=("check", "merge"))
    sim = chunks.filter(phase="simulate").aggregate(seconds=Sum("seconds"), last=Max("finished_at"))
    check = chunks.filter(phase="check").aggregate(seconds=Sum("seconds"))
    merged = chunks.filter(phase="merge").aggregate(seconds=Sum("seconds"))
    first_second = min(c.finished_at.timestamp() - c.seconds for c in second.only("finished_at", "seconds"))
    last_second = second.aggregate(last=Max("finished_at"))["last"]
    return {
        "queued": (run.started_at - run.created_at).total_seconds(),
        "simulation": sim["seconds"],
        "plan": first_second - sim["last"].timestamp(),
        "check": check["seconds"],
        "merge": merged["seconds"],
        "complete": (run.finished_at - last_second).total_seconds(),
    }


def timed_run(scenario_id: int, chunks: int, worker: Worker) -> tuple[float, dict, dict[str, float]]:
    """Seconds from submit to the stored result, the result, and where the time went."""
    from django.conf import settings
    from django.db import transaction

    from twins.scenarios.models import ScenarioRun
    from twins.scenarios.services import start_run

    settings.SCENARIO_QUEUE = worker.queue
    began = time.perf_counter()
    with transaction.atomic():
        run = start_run(scenario_id, chunks=chunks)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        row = ScenarioRun.objects.filter(id=run.id).values("state", "error").first()
        if row["state"] not in ("queued", "running"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run.id} not finished after {RUN_TIMEOUT_S} s")
        time.sleep(0.01)
    seconds = time.perf_counter() - began
    if row["state"] != "done":
        raise RuntimeError(f"run {run.id} ended {row['state']}: {row['error']}")
    parts = breakdown(run.id)
    print(f"  {worker.queue[-2:]}: run {run.id}: {seconds:.2f} s: queued {parts['queued']:.2f} s, simulation {parts['simulation']:.2f} s "
          f"summed over chunks, plan the check {parts['plan']:.2f} s, then check {parts['check']:.2f} s summed over chunks "
          f"beside merge {parts['merge']:.2f} s, complete and store {parts['complete']:.2f} s")
    return seconds, ScenarioRun.objects.get(id=run.id).results, parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--replications", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=8, help="chunks per run (the same for both worker counts)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per worker count, alternating (the best counts)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-whatif-"))
    database_url, is_postgres = scratch_database(tmp)
    workers: list[Worker] = []
    try:
        setup_django(database_url, tmp)
        scenario_id = make_site(args.assets, args.replications)
        print(f"database: {'PostgreSQL' if is_postgres else 'SQLite'}; Redis {REDIS_URL}, queue {QUEUE}; "
              f"{args.assets} assets x {args.replications} replications x 1 year in {args.chunks} chunks")
        load_before = os.getloadavg()
        # Both workers run at once on queues of their own (an idle worker costs no CPU), and
        # their timed runs alternate, so load from other people's work hits both alike.
        for processes in (1, 2):
            workers.append(Worker(processes, tmp))
        for worker in workers:
            worker.wait_ready()
            timed_run(scenario_id, 2, worker)  # warm-up: each pool process imports and connects once
        runs: dict[int, list[tuple[float, dict, float]]] = {1: [], 2: []}
        for _ in range(args.repeats):
            for processes, worker in zip((1, 2), workers):
                runs[processes].append(timed_run(scenario_id, args.chunks, worker))
        timings = {p: min(r[0] for r in rs) for p, rs in runs.items()}
        simulated = {p: min(r[2]["simulation"] + r[2]["check"] + r[2]["merge"] for r in rs) for p, rs in runs.items()}
        # the serial part of each run (planning the check, completing the merge), least of the repeats
        serial = {p: min(r[2]["plan"] + r[2]["complete"] for r in rs) for p, rs in runs.items()}
        results = {p: rs[0][1] for p, rs in runs.items()}
        if any(json.dumps(r[1], sort_keys=True) != json.dumps(results[1], sort_keys=True) for rs in runs.values() for r in rs):
            raise RuntimeError("runs of one scenario stored different results")
        for processes in (1, 2):
            print(f"{processes} worker process{'es' if processes > 1 else ''}: {timings[processes]:6.2f} s from submit to stored result "
                  f"(best of {args.repeats})")
        load_after = os.getloadavg()
        identical = json.dumps(results[1], sort_keys=True) == json.dumps(results[2], sort_keys=True)
        scale = timings[1] / timings[2]
        fleet = results[2]["scenario"]["fleet"]
        print(f"scale-out: x{scale:.2f} (target >= 1.7 on 2 idle cores); 2 workers under 10 s: {timings[2] < 10}; identical results: {identical}")
        print(f"fleet: {fleet['expected_failures']} failures, {fleet['expected_preventive']} preventive jobs, total cost "
              f"{fleet['total_cost']['mean']:,.0f} (p90 {fleet['total_cost']['p90']:,.0f})")
        contention = simulated[2] / simulated[1]
        print(f"simulation, check and merge seconds summed over tasks: {simulated[1]:.2f} with one worker, {simulated[2]:.2f} with two "
              f"(x{contention:.2f}: 1.0 when two cores are free for the two processes)")
        print(f"serial part (plan the check + complete the merge and store): {serial[1]:.2f} s with one worker, {serial[2]:.2f} s with two "
              f"({100 * serial[2] / timings[2]:.0f} % of the two workers' best run)")
        print(f"load average before {load_before[0]:.2f} / after {load_after[0]:.2f} (1 min) on {os.cpu_count()} CPUs")
        print(json.dumps({
            "assets": args.assets, "replications": args.replications,
            "seconds_1_worker": round(timings[1], 3), "seconds_2_workers": round(timings[2], 3), "scale": round(scale, 3),
            "identical": identical, "chunks": args.chunks, "repeats": args.repeats, "cpu_contention": round(contention, 3),
            "serial_seconds_1_worker": round(serial[1], 3), "serial_seconds_2_workers": round(serial[2], 3), "database": "postgresql" if is_postgres else "sqlite",
            "load_avg_before": round(load_before[0], 2), "load_avg_after": round(load_after[0], 2),
        }))
    finally:
        for worker in workers:
            worker.stop()
        from django.db import connections

        connections.close_all()
        if is_postgres:
            drop_database()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
