"""``discover`` against the test devices: the skeleton lists what the device has, and, once an
asset is named, passes the agent's own check."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.field.layouts import BACNET_FAULTY, BACNET_OBJECTS, MISSING_REGISTER, MODBUS_HOLDING_SIZE, UA_VARIABLES, f32
from tests.helpers import ROOT, free_port

pytestmark = pytest.mark.slow


def agent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_node.agent", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def passes_check(skeleton: str, tmp_path, head: str = "") -> subprocess.CompletedProcess:
    config = tmp_path / "node.toml"
    config.write_text(f'[node]\nid = "gw-found"\nstate_dir = "{tmp_path / "state"}"\n[broker]\nurl = "mqtt://127.0.0.1:9"\n'
                      f"{head}\n{skeleton.replace('CHANGE-ME', 'asset-1')}")
    return agent("check", "--config", str(config))


def test_modbus_discovery_finds_the_readable_registers_and_their_values(devices, tmp_path):
    port = free_port()
    devices("tests.field.modbus_device", "--port", str(port))
    result = agent("discover", "--modbus", f"127.0.0.1:{port}", "--scan", "0-40")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"# {MODBUS_HOLDING_SIZE} readable holding register(s) of 0-40 at unit 1." in out
    assert all(f"register = {r}\n" in out for r in range(MODBUS_HOLDING_SIZE))
    assert f"register = {MISSING_REGISTER}\n" not in out
    # registers 6-7 hold the float32 230.1 + 0.5 k: the hint shows it
    hint = re.search(r"register = 6\ntype = \"uint16\" +# now \d+ .*; with 7: float32 ([0-9.e+-]+) ", out)
    assert hint and any(float(hint.group(1)) == float(f"{f32(230.1 + 0.5 * k):g}") for k in range(10_000)), hint
    check = passes_check(out, tmp_path)
    assert check.returncode == 0, check.stderr


def test_opcua_discovery_lists_the_machine_variables(devices, tmp_path):
    port = free_port()
    devices("tests.field.opcua_device", "--port", str(port))
    result = agent("discover", "--opcua", f"opc.tcp://127.0.0.1:{port}/aiot/")
    assert result.returncode == 0, result.stderr
    for v in UA_VARIABLES:
        assert f'node = "ns=2;s=Machine.{v.name}"' in result.stdout
    assert "Machine/spindle_rpm: Double" in result.stdout
    check = passes_check(result.stdout, tmp_path)
    assert check.returncode == 0, check.stderr


def test_bacnet_discovery_lists_objects_with_names_and_units(devices, tmp_path):
    port, local = free_port(), free_port()
    devices("tests.field.bacnet_device", "--port", str(port), "--instance", "1042")
    result = agent("discover", "--bacnet", "--address", f"127.0.0.1:{port}", "--local", f"127.0.0.1:{local}", "--wait", "1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "device_instance = 1042" in out
    for o in BACNET_OBJECTS:
        assert f'object = "{o.object_id}"' in out
    assert 'unit = "°F"' in out and 'unit = "°C"' in out
    assert f'object = "{BACNET_FAULTY}"' in out
    check = passes_check(out, tmp_path, head=f'[bacnet]\naddress = "127.0.0.1:{free_port()}"\n')
    assert check.returncode == 0, check.stderr
