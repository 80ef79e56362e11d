"""OPC UA (asyncua's server in its own process) -> the agent -> broker -> ingest -> database:
a data-change subscription over Basic256Sha256 with certificates and a user, polling where
asked, a variable whose status goes bad and good again, the server restarted mid-run."""

from __future__ import annotations

import asyncio
import time

import pytest

from edge_node.models import EdgeNode
from tests.field.checks import device_events, mismatches, refused, stored, tick_before
from tests.field.conftest import node_toml
from tests.field.layouts import UA_BAD_VARIABLE, UA_VARIABLES, ua_probe
from tests.helpers import free_port, wait_until

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

PERIOD = "0.5"
EXPECTED = {v.name: v.expected for v in UA_VARIABLES}
METRICS = [(v.name, "", -1e12, 1e12) for v in UA_VARIABLES] + [(UA_BAD_VARIABLE, "mm", 0.0, 1000.0)]


def ua_device(name: str, asset: str, port: int, **keys: object) -> str:
    extra = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in keys.items())
    points = "".join(f'[[devices.points]]\nmetric = "{v.name}"\nnode = "ns=2;s=Machine.{v.name}"\n\n' for v in UA_VARIABLES)
    points += f'[[devices.points]]\nmetric = "{UA_BAD_VARIABLE}"\nnode = "ns=2;s=Machine.{UA_BAD_VARIABLE}"\nunit = "mm"\n\n'
    return (f'[[devices]]\nname = "{name}"\nprotocol = "opcua"\nendpoint = "opc.tcp://127.0.0.1:{port}/aiot/"\n'
            f'asset = "{asset}"\npoll_interval_s = 0.2\ntimeout_s = 2.0\n{extra}\n{points}')


def make_certificates(folder) -> dict[str, str]:
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    folder.mkdir()
    paths = {name: folder / name for name in ("server.pem", "server.der", "gateway.pem", "gateway.der")}
    asyncio.run(setup_self_signed_certificate(paths["server.pem"], paths["server.der"], "urn:freeopcua:python:server",
                                              "localhost", [ExtendedKeyUsageOID.SERVER_AUTH], {}))
    asyncio.run(setup_self_signed_certificate(paths["gateway.pem"], paths["gateway.der"], "urn:aiot:test-gateway",
                                              "localhost", [ExtendedKeyUsageOID.CLIENT_AUTH], {}))
    return {k: str(v) for k, v in paths.items()}


def test_a_secured_subscription_stores_every_change_exactly_a_bad_status_once_per_change_and_survives_a_restart(
        ingest_worker, mqtt_url, platform, devices, agents, tmp_path):
    gw = platform({"mill": METRICS, "lathe": METRICS})
    certs = make_certificates(tmp_path / "certs")
    secure_port, plain_port = free_port(), free_port()
    mill_server = devices("tests.field.opcua_device", "--port", str(secure_port), "--t0", str(gw.t0), "--period", PERIOD,
            "--cert", certs["server.der"], "--key", certs["server.pem"], "--secure-only", "--user", "gw", "--password", "s3cret")
    devices("tests.field.opcua_device", "--port", str(plain_port), "--t0", str(gw.t0), "--period", PERIOD)
    (tmp_path / "ua_password").write_text("s3cret\n")
    body = ua_device("mill-1", gw.assets["mill"].key, secure_port, security="Basic256Sha256", mode="SignAndEncrypt",
                     certificate=certs["gateway.der"], private_key=certs["gateway.pem"], username="gw",
                     password_file=str(tmp_path / "ua_password"))
    body += ua_device("lathe-1", gw.assets["lathe"].key, plain_port, subscribe="never")
    config = tmp_path / "node.toml"
    config.write_text(node_toml(gw, mqtt_url, tmp_path / "state", body))
    agent = agents(config)
    # 14 ticks: the probe goes bad at tick 6 and good again at 12 (every 6 ticks)
    wait_until(lambda: len(stored(gw, "mill")["tick"]) >= 14 and len(stored(gw, "lathe")["tick"]) >= 14, 40,
               interval=0.5, what="14 ticks from both machines")
    status = EdgeNode.objects.get(node_id=gw.node_id).status
    mill_server.stop()  # the secured server goes away and comes back: a new session and subscription
    wait_until(lambda: device_events(gw, "mill", "down"), 20, interval=0.3, what="the mill's server reported down")
    mill_server.start()
    restarted = time.time()
    wait_until(lambda: any(ts.timestamp() > restarted for ts in stored(gw, "mill")["tick"]), 40, interval=0.3,
               what="changes after the restart")
    wait_until(lambda: device_events(gw, "mill", "ok"), 10, interval=0.3, what="the mill's server reported back")
    agent.stop()
    assert refused(gw) == []
    assert len(device_events(gw, "mill", "down")) == 1 and len(device_events(gw, "mill", "ok")) == 1
    modes = {d["device"]: d["mode"] for d in status["devices"]}
    assert modes == {"mill-1": "subscription", "lathe-1": "poll"}
    for machine in ("mill", "lathe"):
        rows = stored(gw, machine)
        assert mismatches(rows, EXPECTED) == []
        assert all(len(rows[m]) >= 14 for m in EXPECTED), {m: len(rows[m]) for m in EXPECTED}
        ticks = sorted(int(v) for v in rows["tick"].values())
        # the probe is stored only while its status is good, with its value then
        for ts, value in rows[UA_BAD_VARIABLE].items():
            k = tick_before(rows, ts)
            assert k is not None and ua_probe(k) == (value, True), f"{machine}: probe {value} stored at tick {k}"
        assert len(rows[UA_BAD_VARIABLE]) >= 6
        # one event each time the probe is seen to go bad: a bad tick after a good one seen
        # (a server down across a whole good phase hides that phase from the gateway)
        good = [ua_probe(k)[1] for k in ticks]
        went_bad_seen = sum(1 for i, ok in enumerate(good) if not ok and (i == 0 or good[i - 1]))
        went_bad = device_events(gw, machine, "bad_points")
        assert len(went_bad) == went_bad_seen, [e.message for e in device_events(gw, machine)]
        assert all(f"{UA_BAD_VARIABLE}: BadSensorFailure" in e.message for e in went_bad)
    assert "Traceback" not in agent.log()
