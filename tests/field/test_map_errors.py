"""A misconfigured point map is refused before anything connects, with the file and line of
the mistake; a map needing a protocol library that is not installed names its extra."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

HEAD = """[node]
id = "gw-map"
state_dir = "{state}"
[broker]
url = "mqtt://127.0.0.1:9"

[[devices]]
name = "meter-1"
protocol = "modbus"
host = "192.0.2.10"
asset = "meter-1"

[[devices.points]]
metric = "voltage_v"
register = 0
type = "float32"
unit = "V"
"""


def check(config: Path, *pre: str) -> subprocess.CompletedProcess:
    code = "; ".join(["import sys", *pre, "from edge_node.agent.__main__ import main", "sys.exit(main(sys.argv[1:]))"])
    return subprocess.run([sys.executable, "-c", code, "check", "--config", str(config)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def line_of(text: str, marker: str) -> int:
    [n] = [i for i, line in enumerate(text.splitlines(), start=1) if marker in line]
    return n


@pytest.mark.parametrize(("extra", "marker", "expected"), [
    ('[[devices.points]]\nmetric = "power_w"\nregister = 2\ntype = "float16"  # <<\n',
     "# <<", "devices[0].points[1].type: must be one of int16, uint16, int32, uint32, float32, int64, uint64, float64, bool, got 'float16'"),
    ('[[devices.points]]\nmetric = "power_w"\nregistr = 2  # <<\n', "# <<", "devices[0].points[1].registr: unknown key for a modbus point"),
    ('[[devices.points]]\nmetric = "power_w"\nregister = 2\nunit = "kW"  # <<\nmetric_unit = "bar"\n', "# <<",
     "devices[0].points[1].unit: cannot convert kW (power) to bar (pressure)"),
    ('[[devices.points]]\nmetric = "power_w"\nregister = 2\ntype = "float32"\nbit = 3  # <<\n', "# <<",
     "devices[0].points[1].bit: a bit field needs an integer type, not float32"),
    ('[[devices.points]]\nmetric = "power_w"\nregister = 2\nenum = { "0" = "off" }  # <<\n', "# <<",
     "devices[0].points[1].enum: '0' must map to a number"),
    ('[[devices.points]]  # <<\nmetric = "voltage_v"\nregister = 8\n', "# <<", "meter-1.voltage_v is already read by"),
    ('[[devices.points]]\nmetric = "power_w"\nregister = 70000  # <<\n', "# <<",
     "devices[0].points[1].register: must be between 0 and 65535, got 70000"),
    ('\n[[devices]]\nname = "mill"\nprotocol = "opcua"\nendpoint = "opc.tcp://192.0.2.20:4840"\nsecurity = "Basic256Sha256"  # <<\n'
     '[[devices.points]]\nmetric = "rpm"\nasset = "mill"\nnode = "ns=2;s=Spindle"\n', "# <<",
     "devices[1].security: Basic256Sha256 needs certificate and private_key"),
    ('\n[[devices]]\nname = "ahu"\nprotocol = "bacnet"\naddress = "192.0.2.30"\n'
     '[[devices.points]]\nmetric = "sat"\nasset = "ahu"\nobject = "analog-inpt,1"  # <<\n', "# <<",
     "devices[1].points[0].object: 'analog-inpt,1' must be 'type,instance'"),
])
def test_a_misconfigured_map_is_refused_with_its_line(tmp_path, extra, marker, expected):
    text = HEAD.format(state=tmp_path / "state") + extra
    config = tmp_path / "node.toml"
    config.write_text(text)
    result = check(config)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"config error: {config}:{line_of(text, marker)}: " in result.stderr, result.stderr
    assert expected in result.stderr


def test_an_error_in_a_map_file_names_that_file_and_line(tmp_path):
    maps = tmp_path / "maps"
    maps.mkdir()
    map_text = ('description = "A meter"\nword_order = "little"\n\n[[points]]\nmetric = "voltage_v"\nregister = 0\n'
                'type = "float32"\n\n[[points]]\nmetric = "current_a"\nregister = 2\ntype = "float32"\n'
                'byte_order = "middle"\n')
    (maps / "meter.toml").write_text(map_text)
    text = (f'[node]\nid = "gw-map"\nstate_dir = "{tmp_path / "state"}"\n[broker]\nurl = "mqtt://127.0.0.1:9"\n'
            '[[devices]]\nname = "m"\nprotocol = "modbus"\nhost = "192.0.2.10"\nasset = "m"\nmap = "maps/meter.toml"\n')
    config = tmp_path / "node.toml"
    config.write_text(text)
    result = check(config)
    assert result.returncode == 2
    assert f"{maps / 'meter.toml'}:{line_of(map_text, 'middle')}: points[1].byte_order: must be one of big, little, got 'middle'" \
        in result.stderr, result.stderr


def test_a_good_map_passes_the_check_and_says_what_it_reads(tmp_path):
    config = tmp_path / "node.toml"
    config.write_text(HEAD.format(state=tmp_path / "state"))
    result = check(config)
    assert result.returncode == 0, result.stderr
    assert "ok: node gw-map, 1 source(s)" in result.stdout


def test_a_map_whose_protocol_library_is_missing_names_the_extra_to_install(tmp_path):
    config = tmp_path / "node.toml"
    text = HEAD.format(state=tmp_path / "state")
    config.write_text(text)
    result = check(config, "sys.modules['pymodbus'] = None")  # as on a gateway without the Modbus extra
    assert result.returncode == 2
    assert f"{config}:{line_of(text, '[[devices]]')}: device meter-1: modbus devices need the pymodbus package" in result.stderr
    assert "pip install -r edge_node/agent/requirements-modbus.txt" in result.stderr


def test_real_devices_refuse_a_speedup(tmp_path):
    config = tmp_path / "node.toml"
    config.write_text(HEAD.format(state=tmp_path / "state").replace("[broker]", "speedup = 60.0\n[broker]"))
    result = check(config)
    assert result.returncode == 2 and "[node].speedup: real devices run in real time" in result.stderr


def test_the_example_gateway_and_its_maps_pass_the_check(tmp_path):
    agent_dir = ROOT / "edge_node" / "agent"
    (tmp_path / "maps").mkdir()
    for m in (agent_dir / "maps").glob("*.toml"):
        (tmp_path / "maps" / m.name).write_text(m.read_text())
    for name in ("secrets/mqtt_password", "secrets/mill7", "certs/ca.pem", "certs/gateway.der", "certs/gateway.pem"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("placeholder\n")
    config = tmp_path / "gateway.toml"
    text = (agent_dir / "gateway.example.toml").read_text()
    # no TLS here: a placeholder CA file is not a certificate
    config.write_text(text.replace('url = "mqtts://platform.example.com:8883"\nca_file = "certs/ca.pem"', 'url = "mqtt://127.0.0.1:9"'))
    result = check(config)
    assert result.returncode == 0, result.stderr
    assert "ok: node plant1-gw1, 6 source(s)" in result.stdout
