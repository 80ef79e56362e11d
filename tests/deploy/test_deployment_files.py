"""compose.yaml, the Dockerfile and the systemd units say what the README's production table
says: every service command and every ExecStart is one of the table's commands, and every
long-running process of the table has its service and its unit. (No container runtime or
systemd runs here: these files are checked, not run; the production check runs the table.)"""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import pytest
import yaml

from deploy.prodcheck.table import Process, production_table
from tests.helpers import ROOT

SYSTEMD = ROOT / "deploy" / "systemd"
VENV_BIN = "/opt/aiot/venv/bin/"
DEFAULTED = re.compile(r"\$\{([A-Z][A-Z0-9_]*):-[^}]*\}")  # compose's ${VAR:-default} is the table's ${VAR}


@pytest.fixture(scope="module")
def table() -> list[Process]:
    return production_table()


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def rows_matching(table: list[Process], command: str) -> list[Process]:
    return [row for row in table if row.matches(command)]


def compose_command(service: dict) -> str:
    command = service["command"]
    text = " ".join(command) if isinstance(command, list) else command
    return DEFAULTED.sub(r"${\1}", text)


def test_every_compose_service_command_is_a_production_table_command(table, compose):
    platform = {name: s for name, s in compose["services"].items() if "command" in s and name != "redis"}
    unmatched = {name: compose_command(s) for name, s in platform.items() if not rows_matching(table, compose_command(s))}
    assert not unmatched, f"compose commands not in the README's production table: {unmatched}"


def test_every_process_of_the_table_runs_in_compose(table, compose):
    commands = [compose_command(s) for s in compose["services"].values() if "command" in s]
    for row in table:
        runs = [c for c in commands if row.matches(c)]
        assert runs, f"compose.yaml runs no {row.name!r}: {row.command}"
    ingest = next(row for row in table if row.key == "ingest")
    assert len([c for c in commands if ingest.matches(c)]) == 2, "compose runs two ingest workers"
    names = [c.split("--name ")[1] for c in commands if ingest.matches(c)]
    assert len(set(names)) == 2, "each ingest worker has its own stable name (its MQTT session)"


def test_compose_has_the_stack_the_platform_needs(compose):
    services = compose["services"]
    assert services["db"]["image"].startswith("timescale/timescaledb:")
    assert services["redis"]["image"].startswith("redis:")
    broker = services["broker"]
    assert broker["image"].startswith("eclipse-mosquitto:2")
    assert any(v.startswith("./deploy/mosquitto/aiot.conf:") for v in broker["volumes"]), "the broker runs the shipped config"
    # The service listener's address in the shipped config is the broker's address in compose.
    service_listener = re.search(r"^listener 8884 (\S+)", (ROOT / "deploy/mosquitto/aiot.conf").read_text(), re.M).group(1)
    assert broker["networks"]["internal"]["ipv4_address"] == service_listener
    assert all(s.get("build") == "." for name, s in services.items() if name not in ("db", "redis", "broker"))
    web = services["web"]
    assert web["environment"]["ALLOWED_HOSTS"] and any(str(p).startswith("443:") for p in web["ports"])


def test_the_image_installs_the_runtime_requirements_only():
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install [^\n]*-r (\S+)", dockerfile)
    assert installs == ["requirements.txt"]
    assert "USER aiot" in dockerfile


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in systemd
    text = path.read_text()
    # several ExecStart= lines in a oneshot unit: keep them all, numbered
    counter = iter(range(1000))
    text = re.sub(r"^ExecStart=", lambda m: f"ExecStart{next(counter)}=", text, flags=re.M)
    parser.read_string(text)
    return parser


def exec_starts(path: Path) -> list[str]:
    service = unit(path)["Service"]
    commands = []
    for key, value in service.items():
        if key.startswith("ExecStart"):
            argv = shlex.split(value)
            argv[0] = argv[0].removeprefix(VENV_BIN).removeprefix("/usr/sbin/")
            # systemd specifiers: %H (host name), %i (instance) make one word
            commands.append(" ".join(argv))
    return commands


def test_every_systemd_exec_start_is_a_production_table_command(table):
    for path in sorted(SYSTEMD.glob("*.service")):
        for command in exec_starts(path):
            assert rows_matching(table, command), f"{path.name}: {command!r} is not in the README's production table"
            assert "${" not in command or "EnvironmentFile" in "".join(unit(path)["Service"]), path.name


def test_every_long_running_process_has_a_unit_and_ingest_is_a_template(table):
    commands = {path.name: exec_starts(path) for path in SYSTEMD.glob("*.service")}
    for row in table:
        if row.key == "site-certificates":
            continue  # a manual step per site (README)
        assert any(row.matches(c) for cs in commands.values() for c in cs), f"no unit runs {row.name!r}"
    ingest_units = [name for name, cs in commands.items() if any("manage.py ingest" in c for c in cs)]
    assert ingest_units == ["aiot-ingest@.service"], ingest_units
    assert "%i" in commands["aiot-ingest@.service"][0], "each instance gets its own stable --name"
    target = unit(SYSTEMD / "aiot.target")["Unit"]["Wants"].split()
    long_running = {name for name, cs in commands.items() if unit(SYSTEMD / name)["Service"].get("Type") != "oneshot"}
    assert {n.replace("@.service", "@1.service") for n in long_running} <= set(target)
