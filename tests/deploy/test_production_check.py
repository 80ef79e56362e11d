"""The short form of `make production-check`: the README's production table started process by
process (TLS, PostgreSQL, Redis, Mosquitto), three agents enrolled over HTTPS and publishing
over mqtts://, alerts, a what-if run and a signed rollout, every process type killed with
SIGKILL and restarted under traffic, and nothing lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import _missing
from tests.helpers import CHROMIUM, ROOT

pytestmark = [pytest.mark.timeout(600), pytest.mark.stack]


def pg_server() -> str:
    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        _missing("needs PostgreSQL: set DATABASE_URL=postgres://postgres@127.0.0.1/test")
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def test_the_production_stack_survives_a_kill_9_of_every_process_type_and_loses_nothing(tmp_path):
    server = pg_server()
    for tool in ("mosquitto", "redis-server"):
        if shutil.which(tool) is None:
            _missing(f"needs {tool}")
    if not Path(CHROMIUM).exists():
        _missing(f"needs Chromium at {CHROMIUM}")
    result = subprocess.run([sys.executable, "-m", "deploy.prodcheck", "--short", "--pg", server, "--work", str(tmp_path / "check"),
                             "--chromium", CHROMIUM], cwd=ROOT, capture_output=True, text=True, timeout=540)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    report = f"{figures}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "error" not in figures, report
    assert figures["processes"] == 7 and figures["tls"] and figures["enrolled"] == 3
    assert figures["restarts_survived"] == 6
    assert figures["alert_opened"] and figures["scenario_done"] and figures["rollout_done"] and figures["fleet_page_live"], report
    assert figures["readings_sent"] > 500 and figures["duplicates"] == 0 and not figures["dead_letters"], report
    assert figures["left_in_agent_buffers"] == 0
    # Nothing is lost at the kill of any process, the broker's included: gateways keep every
    # message until the ingest confirms it stored it (end-to-end delivery).
    assert figures["missing_seqs_by_kill"] == {}, report
    assert figures["lost"] == 0 and figures["readings_stored"] == figures["readings_sent"], report
    assert result.returncode == 0 and figures["ok"], report
