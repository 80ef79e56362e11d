"""The command line: bad config or model = clear message and non-zero exit, before connecting."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import ROOT

GOOD = """
[node]
id = "{node}"
state_dir = "{state}"
{models}
[broker]
url = "mqtt://127.0.0.1:9"
[[sources]]
plugin = "induction_motor"
asset = "m1"
{source_extra}
"""


def write(tmp_path: Path, node: str = "t-cli", models: str = "", source_extra: str = "", text: str | None = None) -> Path:
    p = tmp_path / "node.toml"
    p.write_text(text if text is not None else GOOD.format(node=node, state=tmp_path / "state", models=models,
                                                           source_extra=source_extra))
    return p


def agent_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_node.agent", *args], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda s: s.replace('id = "t-cli"', 'id = "bad id!"'), "[node].id: 'bad id!' is not a valid node id"),
    (lambda s: s.replace('url = "mqtt://127.0.0.1:9"', 'url = "http://x"'), "[broker].url: 'http://x' must look like mqtt://"),
    (lambda s: s.replace('plugin = "induction_motor"', 'plugin = "lathe"'), "unknown source plugin 'lathe'"),
    (lambda s: s + 'sample_interval_s = -1\n', "sources[0].sample_interval_s: must be > 0"),
    (lambda s: s + '[sources.params]\nrpmm = 3\n', "unknown parameter(s) rpmm"),
    (lambda s: s.replace("[broker]", "[broker]\nca_file = 'nope.pem'"), "[broker].ca_file:"),
    (lambda s: s + "speed = 3\n", "sources[0].speed: unknown key"),
    (lambda s: s.replace("[node]", "[node"), "invalid TOML"),
])
def test_a_config_error_names_the_problem_and_exits_non_zero(tmp_path, edit, expected):
    path = write(tmp_path)
    path.write_text(edit(path.read_text()))
    result = agent_cli("run", "--config", str(path))
    assert result.returncode == 2, result.stderr
    assert "config error" in result.stderr and expected in result.stderr
    assert "connected" not in result.stderr


def test_a_missing_config_file_is_reported(tmp_path):
    result = agent_cli("run", "--config", str(tmp_path / "none.toml"))
    assert result.returncode == 2 and "config file not found" in result.stderr


def test_an_unreadable_model_stops_the_agent_with_a_clear_message(tmp_path):
    models = tmp_path / "models"
    (models / "induction_motor-anomaly" / "1").mkdir(parents=True)
    (models / "induction_motor-anomaly" / "1" / "model.onnx").write_bytes(b"this is not onnx")
    (models / "induction_motor-anomaly" / "1" / "meta.json").write_text(
        '{"features": ["vib_rms"], "threshold": 0.1, "asset_type": "induction_motor"}')
    (models / "induction_motor-anomaly" / "current").write_text("1\n")
    path = write(tmp_path, models=f'models_dir = "{models}"')
    result = agent_cli("run", "--config", str(path))
    assert result.returncode == 3, result.stderr
    assert "model error" in result.stderr and "induction_motor-anomaly@1" in result.stderr
    assert "model.onnx" in result.stderr


def test_a_named_model_that_is_missing_is_an_error(tmp_path):
    (tmp_path / "models").mkdir()
    path = write(tmp_path, models=f'models_dir = "{tmp_path / "models"}"', source_extra='model = "vibe-v9"')
    result = agent_cli("check", "--config", str(path))
    assert result.returncode == 3 and "model 'vibe-v9': no current version" in result.stderr


def test_the_example_config_is_valid(tmp_path):
    # a copy, so that its relative state_dir lands in tmp_path, not in the source tree
    example = tmp_path / "node.toml"
    example.write_text((ROOT / "edge_node" / "agent" / "node.example.toml").read_text())
    result = agent_cli("check", "--config", str(example))
    assert result.returncode == 0, result.stderr
    assert "4 source(s)" in result.stdout


def test_the_agent_imports_no_django_nor_sklearn():
    code = textwrap.dedent("""
        import sys
        import edge_node.agent.__main__, edge_node.agent.fleet, edge_node.agent.agent
        bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'sklearn', 'skl2onnx', 'psutil'))
        print(bad)
    """)
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
