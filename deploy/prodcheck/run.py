"""The production check, step by step (``python -m deploy.prodcheck``; see __init__)."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from .client import Session
from .measure import Database
from .operator_steps import ADMINS, SITE_NAME, Node, Operator
from .site import Site
from .stack import CheckFailed, Proc, Stack, free_port, port_open, run_once, wait_for
from .table import Process, by_key, production_table

# Process types killed with SIGKILL and restarted under traffic, in this order, by table key.
CHAOS_ORDER = ("web", "ingest", "celery-worker", "celery-beat", "rollout-listener", "broker")
INGEST_WORKERS = 2
GAP_GRACE_S = 45.0  # longer than a gateway's confirmation timeout after a short outage (contract.CONFIRM_TIMEOUT_S doubled)


@dataclass
class Options:
    python: str
    pg_server: str  # postgres://user@host:port (the database is created and dropped)
    redis_url: str  # empty: start a private redis-server
    work: Path
    short: bool = False
    keep: bool = False
    chromium: str = "/usr/bin/chromium"


@dataclass
class Result:
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.notes.append(text)
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def log_since_start(proc: Proc) -> str:
    try:
        text = proc.log_path.read_text(errors="replace")
    except OSError:
        return ""
    return text.rsplit("=== start ", 1)[-1]


def log_has(proc: Proc, pattern: str) -> bool:
    return re.search(pattern, log_since_start(proc)) is not None


READY = {  # what each long-running process prints when it is up
    "ingest": r"connected to .* session present",
    "celery-worker": r"celery@\S+ ready\.",
    "celery-beat": r"beat: Starting\.\.\.",
    "rollout-listener": r"rollout listener running",
}


class ProductionCheck:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.result = Result()
        self.stack = Stack()
        self.table = production_table()
        self.rows = by_key(self.table)
        self.db_name = f"aiot_prodcheck_{os.getpid()}"
        redis_url = opts.redis_url or f"redis://127.0.0.1:{free_port()}/0"
        self.site = Site(opts.work / "site", opts.python, f"{opts.pg_server.rstrip('/')}/{self.db_name}", redis_url)
        self.env = self.site.env()
        self.db = Database(self.site.database_url)
        self.op = Operator(self.site, self.env)

    # -- the stack ---------------------------------------------------------------------------
    def placeholders(self, row: Process, n: int = 1) -> dict[str, str]:
        return {"<public host name>": "127.0.0.1", "<broker's internal address>": "127.0.0.1", "<stable name>": f"prodcheck-{n}", "<cores>": "2",
                "<aiot.conf>": str(self.site.root / "mosquitto" / "aiot.conf")}

    def start_services(self) -> None:
        with psycopg.connect(f"{self.opts.pg_server.rstrip('/')}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        if not self.opts.redis_url:
            port = int(self.site.redis_url.rsplit(":", 1)[1].split("/")[0])
            self.stack.add(Proc("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                                dict(os.environ), self.site.logs / "redis.log", ready=lambda: port_open(port)))
        for name in ("secret_key", "mqtt_ingest", "mqtt_platform"):
            self.site.write_secret(name)

    def run_table(self) -> None:
        """Every row of the README's production table, in its order: one-shot rows run once,
        long-running rows start as their own processes (ingest twice)."""
        broker_conf = self.site.broker_config()
        self.result.say(f"broker config from deploy/mosquitto/aiot.conf -> {broker_conf}")
        for row in self.table:
            if not row.long_running:
                argv = row.argv(self.env, self.placeholders(row))
                run_once(argv, self.env, self.site.logs / "commands.log", row.name)
                self.result.say(f"ran once: {' '.join(argv)}")
                continue
            for n in range(1, (INGEST_WORKERS if row.key == "ingest" else 1) + 1):
                name = f"{row.key}-{n}" if row.key == "ingest" else row.key
                proc = Proc(name, row.argv(self.env, self.placeholders(row, n)), self.env, self.site.logs / f"{name}.log")
                proc.ready = self.readiness(row.key, proc)
                self.stack.add(proc, timeout=90)
                self.result.say(f"started {name} (pid {proc.pid}): {' '.join(proc.argv)}")

    def readiness(self, key: str, proc: Proc):
        if key == "broker":
            return lambda: port_open(self.site.node_port) and port_open(self.site.service_port)
        if key == "web":
            return lambda: port_open(self.site.https_port) and self.healthy()
        pattern = READY[key]
        return lambda: log_has(proc, pattern)

    def healthy(self) -> bool:
        try:
            return '"ok": true' in Session(self.site.url, str(self.site.ca_file), timeout=5).get("/healthz")
        except Exception:  # not up yet: connection refused, TLS not ready
            return False

    # -- the operator's day ------------------------------------------------------------------
    def set_up_fleet(self) -> None:
        op = self.op
        op.create_admins()
        admin = op.session(0)
        admin_css = admin.get("/static/admin/css/base.css")
        if "body" not in admin_css:
            raise CheckFailed("the admin's stylesheet is not served (WhiteNoise, collectstatic)")
        op.add_site(admin)
        self.models = op.prepare_models()
        for i in range(1, 4):
            node = Node(i, self.site.root / "nodes" / f"gw{i}")
            op.write_node_config(node, self.models)
            op.enroll(node)
            op.add_assets(admin, node)
            op.nodes.append(node)
        self.result.figures["enrolled"] = len(op.nodes)
        self.result.say(f"enrolled {', '.join(n.node_id for n in op.nodes)} over HTTPS; broker files rewritten by the web process")
        for node in op.nodes:
            node.proc = op.agent_proc(node)
            node.proc.start()
        wait_for(lambda: self.all_nodes_publish(), 60, "every node's readings in the database")
        self.result.say(f"3 agents publish over mqtts://; {self.db.points_stored()} points stored so far")

    def all_nodes_publish(self) -> bool:
        rows = self.db.all("SELECT count(DISTINCT asset_id) FROM ingest_telemetry")
        status = self.db.node_status()
        online = [s for s in status.values() if s.get("state") == "online"]
        return bool(rows and rows[0][0] >= 6 and len(online) == 3)

    def features(self, round_no: int) -> dict[str, Any]:
        op = self.op
        admin, approver = op.session(0), op.session(1)
        found: dict[str, Any] = {}
        metric, label = (("co2_ppm", "HVAC unit: CO₂"), ("temperature_c", "Centrifugal pump: Bearing temperature"))[round_no - 1]
        op.add_alert_rule(admin, label, warning_above=1.0)
        wait_for(lambda: self.db.open_alerts(metric) >= 3, 45, f"alerts on {metric} for every node")
        alerts_page = admin.get("/alerts/")
        found["alert_opened"] = all(f"Check {'air handler' if metric == 'co2_ppm' else 'pump'} {n.index}" in alerts_page for n in op.nodes)
        self.result.say(f"round {round_no}: rule on {metric} opened {self.db.open_alerts(metric)} alert(s); on the alerts page: {found['alert_opened']}")
        status = op.run_scenario(admin, f"Check scenario {round_no}", 120)
        found["scenario_done"] = status["state"] == "done"
        self.result.say(f"round {round_no}: what-if run {status['run']} done on the Celery worker ({status['done']}/{status['total']} replications)")
        version = str(round_no + 1)
        model_id = op.register_model(self.models, version)
        state = op.roll_out(admin, approver, model_id, 120)
        on_nodes = wait_for(lambda: self.nodes_on_version(version), 30, f"every agent's status to report model {version}")
        found["rollout_done"] = state["state"] == "done" and bool(on_nodes)
        self.result.say(f"round {round_no}: signed model {version} rolled out to {len(state['nodes'])} agents (two admins); statuses report it")
        from .browser import check_fleet_live

        seen = check_fleet_live(self.site.url, self.site.tls / "server.pem", *ADMINS[0], SITE_NAME,
                                [name for n in op.nodes for _, _, name in n.assets], chromium=self.opts.chromium)
        found["fleet_page_live"] = bool(seen["latest_values_moved"] and seen["nodes_online_on_page"] == 3)
        self.result.say(f"round {round_no}: fleet page over HTTPS in Chromium: {seen}")
        return found

    def nodes_on_version(self, version: str) -> bool:
        status = self.db.node_status()
        return all(status.get(n.node_id, {}).get("versions", {}).get("model:centrifugal_pump-anomaly") == version for n in self.op.nodes)

    # -- kill -9 under traffic ---------------------------------------------------------------
    def chaos(self) -> int:
        """Each process type killed with SIGKILL under traffic and restarted; the telemetry
        messages that went missing (gaps in the gateways' seq) are counted per kill."""
        survived = 0
        traffic_s = 3.0 if self.opts.short else 8.0
        gaps: dict[str, int] = {}
        for key in CHAOS_ORDER:
            name = "ingest-1" if key == "ingest" else key
            before, missing_before = self.db.points_stored(), self.db.missing_seqs()
            time.sleep(traffic_s)
            pid = self.stack.restart_after_kill9(name, timeout=90)
            self.probe_after_restart(key)
            self.stack.check_alive()
            survived += 1
            time.sleep(1.5)  # later messages reveal a gap, if any
            seen_gap = self.db.missing_seqs() - missing_before
            # A gateway re-sends what the ingest has not confirmed within its confirmation
            # timeout, so a gap seen just after the restart may close: what counts is the gap
            # still open once every gateway had the time to re-send (GAP_GRACE_S).
            deadline = time.monotonic() + GAP_GRACE_S
            while (gap := self.db.missing_seqs() - missing_before) > 0 and time.monotonic() < deadline:
                time.sleep(0.5)
            gaps[key] = gap
            self.result.say(f"kill -9 {name} (pid {pid}) under traffic; restarted as pid {self.stack.procs[name].pid}; "
                            f"points stored {before} -> {self.db.points_stored()}; telemetry messages missing just after: "
                            f"{seen_gap}, still missing {GAP_GRACE_S:g} s later: {gap}")
        self.result.figures["missing_seqs_by_kill"] = {k: v for k, v in gaps.items() if v}
        return survived

    def probe_after_restart(self, key: str) -> None:
        if key == "web":
            wait_for(self.healthy, 30, "the web process to answer over HTTPS again")
        elif key in ("ingest", "broker"):
            start = self.db.points_stored()
            wait_for(lambda: self.db.points_stored() > start + 20, 60, f"readings to be stored again after the {key} restart")
            if key == "broker":
                wait_for(lambda: self.all_nodes_publish(), 60, "every agent to reconnect")
        elif key == "celery-beat":
            worker = self.stack.procs["celery-worker"]
            seen = log_since_start(worker).count("twins.refresh_twins")
            wait_for(lambda: log_since_start(worker).count("twins.refresh_twins") > seen, 30, "a twin refresh sent by the restarted beat")

    # -- the end -----------------------------------------------------------------------------
    def count(self) -> dict[str, Any]:
        for node in self.op.nodes:
            assert node.proc is not None
            node.proc.stop(timeout=30)
        wait_for(lambda: all(s.get("state") == "offline" and "points_queued" in s for s in self.db.node_status().values()), 30,
                 "every agent's final status")
        last = -1
        while (now := self.db.points_stored()) != last:  # the ingest drains what is in flight
            last = now
            time.sleep(2.0)
        status = self.db.node_status()
        sent = sum(int(s["points_queued"]) for s in status.values())
        buffered = sum(int(s.get("buffer_depth", 0)) for s in status.values())
        stored, dups = self.db.points_stored(), self.db.duplicates()
        return {"readings_sent": sent, "readings_stored": stored, "lost": max(0, sent - (stored - dups)), "duplicates": dups,
                "left_in_agent_buffers": buffered, "missing_seqs": self.db.missing_seqs(),
                "dead_letters": dict(self.db.dead_letters())}

    def stop(self) -> dict[str, int | None]:
        codes = {}
        for name, proc in reversed(list(self.stack.procs.items())):
            codes[name] = proc.stop()
        return codes

    def drop_database(self) -> None:
        with psycopg.connect(f"{self.opts.pg_server.rstrip('/')}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')


def run(opts: Options) -> dict[str, Any]:
    started = time.monotonic()
    check = ProductionCheck(opts)
    figures = check.result.figures
    try:
        check.start_services()
        check.run_table()
        platform = [p for p in check.stack.procs if p != "redis"]
        figures.update(processes=len(platform), tls=True)
        check.set_up_fleet()
        first = check.features(1)
        figures["restarts_survived"] = check.chaos()
        second = check.features(2)
        for key in ("alert_opened", "scenario_done", "rollout_done", "fleet_page_live"):
            figures[key] = bool(first[key] and second[key])
        figures.update(check.count())
        codes = check.stop()
        figures["clean_exits"] = sum(1 for c in codes.values() if c in (0, -15))
        figures["seconds"] = round(time.monotonic() - started, 1)
        return figures
    finally:
        check.stack.stop_all()
        for node in check.op.nodes:
            if node.proc is not None:
                node.proc.stop()
        if not opts.keep:
            check.drop_database()
        (opts.work / "notes.json").write_text(json.dumps({"figures": figures, "notes": check.result.notes}, indent=1, default=str))
