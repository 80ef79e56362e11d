"""What the operator and the users do on the running stack: over HTTPS (forms, with CSRF),
the documented CLI commands, and edge agents that enroll and publish over MQTT with TLS."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import Session
from .site import Site
from .stack import CheckFailed, Proc, run_once, wait_for

SITE_KEY = "prodcheck-site"
SITE_NAME = "Production check site"
MODEL_TYPE = "centrifugal_pump"
MODEL_NAME = f"{MODEL_TYPE}-anomaly"
ADMINS = (("ops-admin", "ops-admin-password-1"), ("ops-approver", "ops-approver-password-2"))


@dataclass
class Node:
    index: int
    folder: Path
    node_id: str = ""
    proc: Proc | None = None

    @property
    def config(self) -> Path:
        return self.folder / "node.toml"

    @property
    def assets(self) -> list[tuple[str, str, str]]:
        """(asset key, plugin = asset type, display name)."""
        n = self.index
        return [(f"pc{n}-pump", "centrifugal_pump", f"Check pump {n}"), (f"pc{n}-ahu", "hvac_unit", f"Check air handler {n}")]


@dataclass
class Operator:
    site: Site
    env: dict[str, str]
    nodes: list[Node] = field(default_factory=list)

    # -- CLI ---------------------------------------------------------------------------------
    def manage(self, *args: str, stdin: str | None = None, extra_env: dict[str, str] | None = None) -> str:
        return run_once([self.site.python, "manage.py", *args], {**self.env, **(extra_env or {})}, self.site.logs / "commands.log",
                        f"manage.py {args[0]}", stdin=stdin)

    def create_admins(self) -> None:
        for username, password in ADMINS:
            self.manage("createsuperuser", "--noinput", "--username", username, "--email", f"{username}@example.com",
                        extra_env={"DJANGO_SUPERUSER_PASSWORD": password})

    def session(self, who: int = 0) -> Session:
        s = Session(self.site.url, str(self.site.ca_file))
        s.login(*ADMINS[who])
        return s

    # -- the site and its gateways -----------------------------------------------------------
    def add_site(self, admin: Session) -> None:
        self.manage("load_asset_types")
        url, body = admin.submit("/admin/twins/site/add/", {"key": SITE_KEY, "name": SITE_NAME, "timezone": "UTC", "_save": "Save"})
        if "/add/" in url:
            raise CheckFailed(f"the admin refused the site: {_errors(body)}")

    def prepare_models(self) -> Path:
        """v1 of the pump anomaly model for the gateways, v2 and v3 to roll out (the documented training command)."""
        models = self.site.root / "models"
        for version in ("1", "2", "3"):
            run_once([self.site.python, "-m", "edge_node.agent.train_anomaly", "--asset-type", MODEL_TYPE, "--out", str(models),
                      "--version", version, "--windows", "600"], self.env, self.site.logs / "commands.log", "train_anomaly")
        return models

    def write_node_config(self, node: Node, models: Path) -> None:
        node.folder.mkdir(parents=True, exist_ok=True)
        seed_dir = node.folder / "models" / MODEL_NAME
        shutil.copytree(models / MODEL_NAME / "1", seed_dir / "1")
        (seed_dir / "current").write_text("1\n")
        sources = "".join(
            f'\n[[sources]]\nplugin = "{plugin}"\nasset = "{key}"\nseed = {node.index * 10 + i}\nsample_interval_s = 0.5\n'
            for i, (key, plugin, _) in enumerate(node.assets)
        )
        node.config.write_text(
            '[node]\nstate_dir = "state"\nmodels_dir = "models"\npublish_interval_s = 0.5\nheartbeat_interval_s = 2.0\n\n'
            "[broker]\nkeepalive_s = 10\n\n"
            "[filter]\naggregate_window_s = 1.0\ndeadband_pct = 0.0\nmax_silence_s = 5.0\n" + sources
        )

    def enroll(self, node: Node) -> None:
        node_id = f"prodcheck-gw-{node.index}"
        token = self.manage("create_enrollment_token", SITE_KEY, "--node-id", node_id, "--url", self.site.url).strip().splitlines()[-1]
        run_once([self.site.python, "-m", "edge_node.agent", "enroll", "--url", self.site.url, "--token", token,
                  "--config", str(node.config), "--ca-file", str(self.site.ca_file), "--name", f"Check gateway {node.index}"],
                 self.env, self.site.logs / "commands.log", f"enroll {node_id}")
        text = node.config.read_text()
        if f'id = "{node_id}"' not in text or "mqtts://" not in text or "ca_file" not in text:
            raise CheckFailed(f"{node.config} after enrollment lacks the identity or the TLS broker:\n{text[:400]}")
        node.node_id = node_id

    def add_assets(self, admin: Session, node: Node) -> None:
        for key, plugin, name in node.assets:
            url, body = admin.submit("/admin/twins/asset/add/", {"key": key, "name": name, "hours_per_day": "16", "_save": "Save"},
                                     choose={"site": SITE_NAME, "asset_type": _type_name(plugin), "node": node.node_id})
            if "/add/" in url:
                raise CheckFailed(f"the admin refused asset {key}: {_errors(body)}")

    def agent_proc(self, node: Node) -> Proc:
        return Proc(f"agent-{node.index}", [self.site.python, "-m", "edge_node.agent", "run", "--config", str(node.config)],
                    {k: v for k, v in self.env.items() if not k.startswith(("AIOT_", "MQTT_", "SECRET_", "DATABASE_", "REDIS_"))},
                    self.site.logs / f"agent-{node.index}.log")

    # -- features ----------------------------------------------------------------------------
    def add_alert_rule(self, admin: Session, metric_label: str, warning_above: float) -> None:
        url, body = admin.submit("/rules/new/", {"warning_above": str(warning_above), "hysteresis": "1", "min_duration_s": "2", "enabled": "on"},
                                 choose={"metric": metric_label})
        if "/rules/new/" in url:
            raise CheckFailed(f"the rule was refused: {_errors(body)}")

    def run_scenario(self, planner: Session, name: str, timeout: float) -> dict[str, Any]:
        url, body = planner.submit("/scenarios/new/", {"name": name, "replications": "200", "horizon_days": "90", "seed": "7", "load_factor": "1.2"},
                                   choose={"site": SITE_NAME})
        m = re.search(r"/scenarios/runs/(\d+)/", url)
        if not m:
            raise CheckFailed(f"the scenario was refused: {_errors(body)}")
        run_id = int(m.group(1))
        status = wait_for(lambda: _finished(planner.json(f"/scenarios/runs/{run_id}/status/")), timeout, f"scenario run {run_id}")
        if status["state"] != "done":
            raise CheckFailed(f"scenario run {run_id} ended {status['state']}: {status.get('error')}")
        page = planner.get(f"/scenarios/runs/{run_id}/")
        if "Failure probability" not in page and "failure" not in page.lower():
            raise CheckFailed(f"scenario run {run_id} page shows no results")
        return status

    def register_model(self, models: Path, version: str) -> int:
        out = self.manage("register_model", str(models / MODEL_NAME / version))
        m = re.search(r"\(id (\d+)\)", out)
        if not m:
            raise CheckFailed(f"register_model printed no id: {out!r}")
        return int(m.group(1))

    def roll_out(self, proposer: Session, approver: Session, model_id: int, timeout: float) -> dict[str, Any]:
        url, body = proposer.submit(f"/model-registry/{model_id}/", {"canary_share": "0.34", "max_p99_latency_ms": "50", "min_agreement": "0.5",
                                                                     "max_load_failures": "0"}, choose={"site": SITE_NAME})
        m = re.search(r"/rollouts/(\d+)/", url)
        if not m:
            raise CheckFailed(f"the rollout was refused: {_errors(body)}")
        rollout_id = int(m.group(1))
        approver.submit(f"/rollouts/{rollout_id}/", {}, action=f"/rollouts/{rollout_id}/approve/")
        state = wait_for(lambda: _rollout_over(proposer.json(f"/rollouts/{rollout_id}/state.json")), timeout, f"rollout {rollout_id}")
        if state["state"] != "done" or len(state["nodes"]) != len(self.nodes):
            raise CheckFailed(f"rollout {rollout_id}: {json.dumps(state)[:1500]}")
        return state


def _finished(status: dict[str, Any] | None) -> dict[str, Any] | None:
    return status if status and status.get("state") in ("done", "failed", "cancelled") else None


def _rollout_over(state: dict[str, Any]) -> dict[str, Any] | None:
    return state if state.get("state") in ("done", "rolled_back", "cancelled", "failed") else None


def _type_name(plugin: str) -> str:
    from edge_node.agent.asset_types import ASSET_TYPES

    return ASSET_TYPES[plugin]["label"]


def _errors(body: str) -> str:
    found = re.findall(r'class="errorlist[^"]*"[^>]*>(.*?)</ul>', body, re.S)
    text = " | ".join(re.sub(r"<[^>]+>", " ", e) for e in found)
    return " ".join(text.split())[:800] or body[:300]
