"""Modbus devices (pymodbus's server in its own process) -> the agent -> the real broker ->
the real ingest worker -> the database: every value exactly as the device held it."""

from __future__ import annotations

import time

import pytest

from edge_node.models import EdgeNode
from tests.field.checks import device_events, mismatches, refused, stored, ticks
from tests.field.conftest import node_toml
from tests.field.helpers import SerialLine
from tests.field.layouts import MODBUS_POINTS, modbus_metrics, modbus_point_map
from tests.helpers import free_port, wait_until

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

PERIOD = "0.5"
EXPECTED = {p.metric: p.expected for p in MODBUS_POINTS}
# Read in requests after the tick's, in the same poll: the other tables, and the holding
# registers too once a block holding a refused register was split (then the tick's block and
# theirs are separate requests, and the device's tick may move on in between on a busy machine).
LATER = frozenset(p.metric for p in MODBUS_POINTS if p.metric != "tick")


def modbus_device(name: str, asset: str, port: int, **keys: object) -> str:
    extra = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in keys.items())
    head = f'[[devices]]\nname = "{name}"\nprotocol = "modbus"\nhost = "127.0.0.1"\nport = {port}\n' if port else \
        f'[[devices]]\nname = "{name}"\nprotocol = "modbus"\n'
    return head + f"poll_interval_s = 0.2\ntimeout_s = 0.5\n{extra}\n" + modbus_point_map(asset) + "\n"


def test_it_stores_every_modbus_value_exactly_and_reports_a_missing_register_once(
        ingest_worker, mqtt_url, platform, devices, agents, tmp_path):
    gw = platform({"meter": modbus_metrics()})
    port = free_port()
    devices("tests.field.modbus_device", "--port", str(port), "--t0", str(gw.t0), "--period", PERIOD)
    config = tmp_path / "node.toml"
    config.write_text(node_toml(gw, mqtt_url, tmp_path / "state", modbus_device("meter-1", gw.assets["meter"].key, port)))
    agent = agents(config)
    wait_until(lambda: len(stored(gw, "meter")["tick"]) >= 8, 30, interval=0.5, what="8 ticks of the meter stored")
    agent.stop()
    rows = stored(gw, "meter")
    assert refused(gw) == []
    assert mismatches(rows, EXPECTED, LATER) == []
    seen = sorted(ticks(rows).values())
    assert seen == list(range(seen[0], seen[0] + len(seen))), f"ticks missing in between: {seen}"
    assert all(len(rows[m]) >= 8 for m in EXPECTED), {m: len(rows[m]) for m in EXPECTED}
    assert rows["missing_reg"] == {}
    [event] = device_events(gw, "meter")
    assert event.severity == "warning" and event.data["state"] == "bad_points"
    assert "missing_reg: Modbus exception 2 (illegal data address)" in event.message
    health = EdgeNode.objects.get(node_id=gw.node_id).status["devices"][0]
    assert health["device"] == "meter-1" and health["state"] == "ok" and health["mode"] == "poll"
    assert health["bad"] == [{"point": f"{gw.assets['meter'].key}.missing_reg", "reason": "Modbus exception 2 (illegal data address)"}]
    log = agent.log()
    assert "Traceback" not in log, log


def test_a_stopped_device_is_reported_once_and_read_again_while_the_other_keeps_its_schedule(
        ingest_worker, mqtt_url, platform, devices, agents, tmp_path):
    gw = platform({"a": modbus_metrics(), "b": modbus_metrics()})
    port_a, port_b = free_port(), free_port()
    dev_a = devices("tests.field.modbus_device", "--port", str(port_a), "--t0", str(gw.t0), "--period", PERIOD)
    devices("tests.field.modbus_device", "--port", str(port_b), "--t0", str(gw.t0), "--period", PERIOD)
    body = modbus_device("meter-a", gw.assets["a"].key, port_a) + modbus_device("meter-b", gw.assets["b"].key, port_b)
    config = tmp_path / "node.toml"
    config.write_text(node_toml(gw, mqtt_url, tmp_path / "state", body))
    agent = agents(config)
    wait_until(lambda: len(stored(gw, "a")["tick"]) >= 3, 30, interval=0.3, what="meter a's first readings")
    dev_a.stop()
    stopped_at = time.time()
    wait_until(lambda: device_events(gw, "a", "down"), 15, interval=0.3, what="meter a reported down")
    time.sleep(4.0)  # the agent retries meanwhile (backoff 1, 2, 4 s): still one event
    b_during = [ts for ts in stored(gw, "b")["tick"] if ts.timestamp() > stopped_at]
    assert len(b_during) >= 6, f"meter b stalled while meter a was down: {len(b_during)} ticks in {time.time() - stopped_at:.1f} s"
    dev_a.start()
    restarted_at = time.time()
    wait_until(lambda: any(ts.timestamp() > restarted_at for ts in stored(gw, "a")["tick"]), 30, interval=0.3,
               what="meter a read again after its restart")
    wait_until(lambda: device_events(gw, "a", "ok"), 10, interval=0.3, what="meter a reported back")
    agent.stop()
    assert len(device_events(gw, "a", "down")) == 1
    assert len(device_events(gw, "a", "ok")) == 1
    assert [e.data["state"] for e in device_events(gw, "b")] == ["bad_points"]  # its missing register, nothing else
    assert refused(gw) == []
    for asset in ("a", "b"):
        assert mismatches(stored(gw, asset), EXPECTED, LATER) == []
    down = device_events(gw, "a", "down")[0]
    assert "meter-a (modbus 127.0.0.1:" in down.message and "is unreachable" in down.message


def test_it_reads_modbus_rtu_over_a_serial_line(ingest_worker, mqtt_url, platform, devices, agents, tmp_path):
    gw = platform({"meter": modbus_metrics()})
    line = SerialLine()
    try:
        devices("tests.field.modbus_device", "--serial", line.paths[0], "--baudrate", "115200", "--units", "7",
                "--t0", str(gw.t0), "--period", PERIOD)
        body = modbus_device("rtu-meter", gw.assets["meter"].key, 0, serial=line.paths[1], baudrate=115200, unit_id=7)
        config = tmp_path / "node.toml"
        config.write_text(node_toml(gw, mqtt_url, tmp_path / "state", body))
        agent = agents(config)
        # Every point read five times (a poll's points may reach the database in two batches).
        wait_until(lambda: all(len(v) >= 5 for k, v in stored(gw, "meter").items() if k in EXPECTED), 40, interval=0.5,
                   what="every point 5 times over RTU")
        agent.stop()
    finally:
        line.close()
    rows = stored(gw, "meter")
    assert mismatches(rows, EXPECTED, LATER) == []
    assert all(len(rows[m]) >= 5 for m in EXPECTED)
