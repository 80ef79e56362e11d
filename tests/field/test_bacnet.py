"""BACnet/IP (a bacpypes3 device in its own process) -> the agent -> broker -> ingest -> database:
COV subscriptions and ReadPropertyMultiple polling, binary and multi-state values, a °F object
converted to °C, an object in fault never stored and reported once, the controller restarted."""

from __future__ import annotations

import time

import pytest

from edge_node.models import EdgeNode
from tests.field.checks import device_events, mismatches, refused, stored
from tests.field.conftest import node_toml
from tests.field.layouts import BACNET_FAULTY, BACNET_OBJECTS
from tests.helpers import free_port, wait_until

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

PERIOD = "0.5"
EXPECTED = {o.metric: o.expected for o in BACNET_OBJECTS}
METRICS = [(o.metric, "°C" if o.unit else "", -1e6, 1e6) for o in BACNET_OBJECTS] + [("damper_pct", "%", 0.0, 100.0)]


def bacnet_device(name: str, asset: str, port: int, instance: int, **keys: object) -> str:
    extra = "".join(f"{k} = {v!r}\n".replace("'", '"').replace("True", "true").replace("False", "false") for k, v in keys.items())
    points = ""
    for o in BACNET_OBJECTS:
        points += f'[[devices.points]]\nmetric = "{o.metric}"\nobject = "{o.object_id}"\n'
        points += f'unit = "{o.unit}"\nmetric_unit = "°C"\n\n' if o.unit else "\n"
    points += f'[[devices.points]]\nmetric = "damper_pct"\nobject = "{BACNET_FAULTY}"\nunit = "%"\n\n'
    return (f'[[devices]]\nname = "{name}"\nprotocol = "bacnet"\naddress = "127.0.0.1:{port}"\ndevice_instance = {instance}\n'
            f'asset = "{asset}"\npoll_interval_s = 0.2\ntimeout_s = 1.0\n{extra}\n{points}')


def test_cov_and_polled_controllers_store_every_value_exactly_and_a_faulty_object_never(
        ingest_worker, mqtt_url, platform, devices, agents, tmp_path):
    gw = platform({"ahu1": METRICS, "ahu2": METRICS})
    port1, port2, local = free_port(), free_port(), free_port()
    ahu1 = devices("tests.field.bacnet_device", "--port", str(port1), "--instance", "1001", "--t0", str(gw.t0), "--period", PERIOD)
    devices("tests.field.bacnet_device", "--port", str(port2), "--instance", "1002", "--t0", str(gw.t0), "--period", PERIOD)
    body = f'[bacnet]\naddress = "127.0.0.1:{local}"\ndevice_instance = 599001\n\n'
    body += bacnet_device("ahu-1", gw.assets["ahu1"].key, port1, 1001)
    body += bacnet_device("ahu-2", gw.assets["ahu2"].key, port2, 1002, cov=False)
    config = tmp_path / "node.toml"
    config.write_text(node_toml(gw, mqtt_url, tmp_path / "state", body))
    agent = agents(config)
    wait_until(lambda: all(len(stored(gw, a)["tick"]) >= 8 for a in ("ahu1", "ahu2")), 40, interval=0.5,
               what="8 ticks from both controllers")
    status = EdgeNode.objects.get(node_id=gw.node_id).status
    ahu1.stop()
    wait_until(lambda: device_events(gw, "ahu1", "down"), 20, interval=0.3, what="ahu-1 reported down")
    ahu1.start()
    restarted = time.time()
    wait_until(lambda: any(ts.timestamp() > restarted for ts in stored(gw, "ahu1")["tick"]), 40, interval=0.3,
               what="ahu-1 read again after its restart")
    agent.stop()
    assert refused(gw) == []
    assert {d["device"]: d["mode"] for d in status["devices"]} == {"ahu-1": "cov", "ahu-2": "poll"}
    # ahu-2 is read with ReadPropertyMultiple: one answer, one tick. ahu-1's values come as COV
    # notifications, one per object, gathered over 50 ms: a batch may straddle a tick change
    # (the first notifications after a subscription arrive in no particular order).
    assert mismatches(stored(gw, "ahu2"), EXPECTED) == []
    assert mismatches(stored(gw, "ahu1"), EXPECTED, frozenset(EXPECTED) - {"tick"}, offsets=(-1, 0, 1)) == []
    for ahu in ("ahu1", "ahu2"):
        rows = stored(gw, ahu)
        assert all(len(rows[m]) >= 6 for m in EXPECTED), {m: len(rows[m]) for m in EXPECTED}
        assert rows["damper_pct"] == {}
        [fault] = device_events(gw, ahu, "bad_points")
        assert "damper_pct: the object reports a fault" in fault.message
    assert len(device_events(gw, "ahu1", "down")) == 1 and len(device_events(gw, "ahu1", "ok")) == 1
    assert device_events(gw, "ahu2", "down") == []
