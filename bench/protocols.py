"""Protocol benchmark: one edge agent reading real protocol servers on localhost.

- 100 Modbus TCP devices (pymodbus servers, one port each, in one process), 50 holding
  registers each, polled every second: 5,000 points a second offered;
- an OPC UA server (asyncua) with 1,000 variables all written 10 times a second, the agent
  subscribed to every one: 10,000 value changes a second offered;
- BACnet/IP devices (bacpypes3, one process each) with 50 analog values, read with
  ReadPropertyMultiple every second (no target in the issue; reported for scale).

The agent is the real one (``python -m edge_node.agent run``) in its own process, publishing
to a private Mosquitto; a subscriber stands in for the platform (it confirms every message,
as the ingest does, so the agent's outbox drains) and checks every value it receives against
what the device held: Modbus register i of device d holds (7k + 131d + i) mod 65536, OPC UA and
BACnet point i holds 1000k + i, for the device's tick k (a reading's values must all agree
on one k for Modbus; each value must be of that form for the others).

Measured over the steady window (after a warm-up), in whole seconds of read time: the values
that arrived at the subscriber whose reading was taken in the window (a Modbus poll's time, an
OPC UA change's source timestamp), per second; each reading counted once. So a device read
once a second counts exactly once per second however the readings bunch up on their way, and
a lost reading shows as a shortfall. Every OPC UA write the server made in the window (it logs
each one's source timestamp) must arrive with all its items (``opcua_writes_lost``,
``opcua_writes_incomplete``; both count against ``values_exact``). Also: the agent's CPU (% of
one core, and CPU-seconds per 10,000 values, which does not depend on the machine's load), each
server process's CPU, the agent's own read counters (from its status heartbeat), arrivals per
second, machine load. Last line JSON:
{"modbus_points_per_s", "opcua_changes_per_s", "bacnet_points_per_s", "agent_cpu_percent", "values_exact", ...}.

The OPC UA server is asyncua's, with one change for the benchmark (see
tests/field/opcua_device.py, ``FreshDataValue``): it does not deep-copy each written value for
each monitored item, which took three quarters of its CPU; one process then writes and
publishes 10,000 changes a second with about a fifth of a core.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
import psutil  # noqa: E402

from edge_node.agent import contract  # noqa: E402
from tests.services import PrivateMosquitto  # noqa: E402

NODE = "bench-gw"
MODBUS_REGS = 50


def free_port_range(n: int, start: int = 21000) -> int:
    """The first port p such that p..p+n-1 are all free on 127.0.0.1."""
    base = start
    while base + n < 60000:
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            base = p + 1
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(module: str, *args: str, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = open(log, "wb")  # noqa: SIM115 - the child writes it
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=out)
    out.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == b"ready":
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # keep its pipe drained
            return proc
        if not line and proc.poll() is not None:
            break
    raise RuntimeError(f"{module} did not start: {log.read_text()[-2000:]}")


def agent_config(work: Path, broker: str, modbus_base: int, n_modbus: int, ua_port: int, n_ua: int,
                 bacnet_ports: list[int], n_bacnet_objects: int, ua_publish_ms: float = 100.0, ua_queue: int = 50) -> str:
    lines = [f'[node]\nid = "{NODE}"\nstate_dir = "{work / "state"}"\npublish_interval_s = 1.0\nheartbeat_interval_s = 2.0\n',
             f'[broker]\nurl = "{broker}"\n', f'[bacnet]\naddress = "127.0.0.1:{free_port()}"\n']
    for d in range(n_modbus):
        lines.append(f'[[devices]]\nname = "mb-{d:03d}"\nprotocol = "modbus"\nhost = "127.0.0.1"\nport = {modbus_base + d}\n'
                     f'asset = "mb-{d:03d}"\npoll_interval_s = 1.0\ntimeout_s = 2.0\n')
        lines += [f'[[devices.points]]\nmetric = "r{i}"\nregister = {i}\n' for i in range(MODBUS_REGS)]
    if n_ua:
        lines.append(f'[[devices]]\nname = "ua-machine"\nprotocol = "opcua"\nendpoint = "opc.tcp://127.0.0.1:{ua_port}/aiot/"\n'
                     f'poll_interval_s = 0.1\npublishing_interval_ms = {ua_publish_ms}\nqueue_size = {ua_queue}\n'
                     'timeout_s = 5.0\n')
        lines += [f'[[devices.points]]\nmetric = "v{i}"\nasset = "ua-{i // 50:02d}"\nnode = "ns=2;s=Machine.v{i}"\n' for i in range(n_ua)]
    for b, port in enumerate(bacnet_ports):
        lines.append(f'[[devices]]\nname = "bac-{b}"\nprotocol = "bacnet"\naddress = "127.0.0.1:{port}"\ndevice_instance = {3000 + b}\n'
                     f'asset = "bac-{b}"\npoll_interval_s = 1.0\ntimeout_s = 3.0\ncov = false\n')
        lines += [f'[[devices.points]]\nmetric = "v{i}"\nobject = "analog-value,{i}"\n' for i in range(n_bacnet_objects)]
    return "\n".join(lines)


class Checker:
    """The platform's stand-in: confirms every message and checks every value."""

    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.values = {"modbus": 0, "opcua": 0, "bacnet": 0}
        # protocol -> (asset, read time: the poll's, or the OPC UA source timestamp) -> values
        self.by_read_time: dict[str, dict[tuple[str, float], int]] = {"modbus": {}, "opcua": {}, "bacnet": {}}
        self.bad: list[str] = []
        self.status: dict | None = None
        self.readings = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-platform", protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, *a: c.subscribe(f"{contract.TOPIC_PREFIX}/{NODE}/#", qos=1)
        self.client.on_message = self._on_message
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        parsed = contract.parse_topic(msg.topic)
        if parsed is None or not msg.payload:
            return
        channel = parsed[1]
        body = contract.decode(msg.payload)
        if channel == "status":
            self.status = body
            return
        if channel in contract.CONFIRMED_CHANNELS and isinstance(body.get("seq"), int):
            client.publish(contract.topic(NODE, "confirm"), contract.encode({channel: contract.seq_ranges([body["seq"]])}), qos=1)
        if channel != "telemetry":
            return
        with self.lock:
            for r in body["readings"]:
                self.readings += 1
                protocol = self._check(r["asset"], r["values"])
                # one reading per asset and read time (a batch the agent sent again counts once)
                self.by_read_time[protocol][(r["asset"], round(r["ts"], 3))] = len(r["values"])

    def wait_past(self, ts: float, protocols: list[str], timeout: float) -> None:
        """Until every protocol has a reading read at ``ts`` or later (or ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(max((t for _, t in self.by_read_time[p]), default=0.0) >= ts for p in protocols):
                    return
            time.sleep(0.2)

    def read_in(self, protocol: str, t0: float, t1: float) -> tuple[int, dict[float, int]]:
        """Values read in [t0, t1) by their read time, and the count per read time."""
        counts: dict[float, int] = {}
        with self.lock:
            for (_, ts), n in self.by_read_time[protocol].items():
                if t0 <= ts < t1:
                    counts[ts] = counts.get(ts, 0) + n
        return sum(counts.values()), counts

    def _check(self, asset: str, values: dict) -> str:
        if asset.startswith("mb-"):
            d = int(asset[3:])
            ks = {((v - 131 * d - int(m[1:])) * pow(7, -1, 65536)) % 65536 for m, v in values.items() if float(v).is_integer()}
            if len(ks) != 1 or any(not float(v).is_integer() for v in values.values()):
                self.bad.append(f"{asset}: values of one read disagree on the tick: {sorted(ks)[:5]}")
            self.values["modbus"] += len(values)
            return "modbus"
        protocol = "opcua" if asset.startswith("ua-") else "bacnet"
        for m, v in values.items():
            i = int(m[1:])
            if not float(v).is_integer() or (int(v) - i) % 1000 != 0:
                self.bad.append(f"{asset}.{m} = {v!r} is not 1000k + {i}")
        self.values[protocol] += len(values)
        return protocol

    def snapshot(self) -> tuple[dict[str, int], dict | None]:
        with self.lock:
            return dict(self.values), self.status

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def device_counters(status: dict | None) -> dict[str, int]:
    out = {"modbus": 0, "opcua": 0, "bacnet": 0}
    for d in (status or {}).get("devices", []):
        out[d["protocol"]] += d["values"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modbus-devices", type=int, default=100)
    parser.add_argument("--opcua-items", type=int, default=1000)
    parser.add_argument("--opcua-hz", type=float, default=10.0)
    parser.add_argument("--opcua-publish-ms", type=float, default=500.0, help="the subscription's publishing interval (items queue the changes between two publishes)")
    parser.add_argument("--opcua-queue-s", type=float, default=5.0,
                        help="seconds of changes each monitored item queues on the server (a publish that comes late loses none)")
    parser.add_argument("--bacnet-devices", type=int, default=2)
    parser.add_argument("--bacnet-objects", type=int, default=50)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=30.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aiot-bench-protocols-"))
    procs: list[subprocess.Popen] = []
    servers: dict[str, subprocess.Popen] = {}
    broker = PrivateMosquitto(work / "mosquitto")
    broker.start()
    t0 = time.time()
    try:
        modbus_base = free_port_range(args.modbus_devices)
        if args.modbus_devices:
            servers["modbus"] = start("tests.field.modbus_device", "--bench", str(args.modbus_devices), "--registers", str(MODBUS_REGS),
                                      "--port", str(modbus_base), "--t0", str(t0), "--period", "1.0", log=work / "modbus.log")
        ua_port = free_port()
        ua = None
        if args.opcua_items:
            ua = start("tests.field.opcua_device", "--bench", str(args.opcua_items), "--hz", str(args.opcua_hz),
                       "--port", str(ua_port), log=work / "opcua.log")
            servers["opcua"] = ua
        bacnet_ports = [free_port() for _ in range(args.bacnet_devices)]
        for b, port in enumerate(bacnet_ports):
            servers[f"bacnet{b}"] = start("tests.field.bacnet_device", "--bench", str(args.bacnet_objects), "--port", str(port),
                                          "--instance", str(3000 + b), "--t0", str(t0), "--period", "1.0", log=work / f"bacnet{b}.log")
        checker = Checker(broker.port)
        config = work / "node.toml"
        config.write_text(agent_config(work, broker.url, modbus_base, args.modbus_devices, ua_port, args.opcua_items,
                                       bacnet_ports, args.bacnet_objects, args.opcua_publish_ms,
                                       max(10, int(args.opcua_hz * args.opcua_queue_s))))
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        agent_log = open(work / "agent.log", "wb")  # noqa: SIM115 - the child writes it
        agent = subprocess.Popen([sys.executable, "-m", "edge_node.agent", "run", "--config", str(config), "--log-level", "WARNING"],
                                 cwd=ROOT, env=env, stdout=agent_log, stderr=subprocess.STDOUT)
        procs.append(agent)
        print(f"warming up {args.warmup:.0f} s ({args.modbus_devices} Modbus devices x {MODBUS_REGS} registers, "
              f"{args.opcua_items} OPC UA items at {args.opcua_hz:g} Hz, {args.bacnet_devices} BACnet devices x "
              f"{args.bacnet_objects} objects)", flush=True)
        time.sleep(args.warmup)
        procs_ps = {"agent": psutil.Process(agent.pid), **{name: psutil.Process(p.pid) for name, p in servers.items()}}
        cpu0 = {name: sum(ps.cpu_times()[:2]) for name, ps in procs_ps.items()}
        got0, status0 = checker.snapshot()
        read0 = device_counters(status0)
        wall0 = time.monotonic()
        # the window for the read rates: whole seconds of read time (a Modbus poll's time, an
        # OPC UA change's source timestamp), so that a device read once a second counts exactly
        # once per second of it, however the readings bunch up on their way
        t_start = float(math.ceil(time.time()))
        load0 = os.getloadavg()[0]
        time.sleep(args.duration)
        cpu1 = {name: sum(ps.cpu_times()[:2]) for name, ps in procs_ps.items()}
        wall1 = time.monotonic()
        t_end = t_start + math.floor(time.time() - t_start)
        # until what was read before t_end has arrived (past the publishing interval, the agent's
        # batch and any backlog), and one more heartbeat
        checker.wait_past(t_end + 2.0, [p for p, n in (("modbus", args.modbus_devices), ("opcua", args.opcua_items),
                                                      ("bacnet", args.bacnet_devices)) if n], timeout=30.0)
        time.sleep(2.5)
        got1, status1 = checker.snapshot()
        read1 = device_counters(status1)
        span = wall1 - wall0
        heartbeat_span = (status1 or {}).get("ts", 0) - (status0 or {}).get("ts", 0) or span
        rates_counted = {p: (read1[p] - read0[p]) / heartbeat_span for p in read0}
        rates_got = {p: (got1[p] - got0[p]) / span for p in got0}
        read_window = {p: checker.read_in(p, t_start, t_end) for p in read0}
        rates_read = {p: n / (t_end - t_start) for p, (n, _) in read_window.items()}
        cpu_s = {name: cpu1[name] - cpu0[name] for name in cpu0}
        cpu_pct = 100.0 * cpu_s["agent"] / span
        values_counted = sum(read1[p] - read0[p] for p in read0) * span / heartbeat_span
        # every OPC UA write (one source timestamp) must arrive with all its items
        ua_incomplete = [ts for ts, n in read_window["opcua"][1].items() if n != args.opcua_items]
        agent.terminate()
        agent.wait(30)
        agent_log.close()
        down = [d["device"] for d in (status1 or {}).get("devices", []) if d["state"] != "ok"]
        ua_written = 0
        if ua is not None:
            # the OPC UA server's writes in the window ("write k <source timestamp>"): what it offered
            stamps = [round(float(line.split()[2]), 3) for line in (work / "opcua.log").read_text().splitlines() if line.startswith("write ")]
            ua_written = sum(1 for ts in stamps if t_start <= ts < t_end)
        ua_delivered = len(read_window["opcua"][1])
        result = {
            "modbus_points_per_s": round(rates_read["modbus"], 1),
            "opcua_changes_per_s": round(rates_read["opcua"], 1),
            "bacnet_points_per_s": round(rates_read["bacnet"], 1),
            "agent_cpu_percent": round(cpu_pct, 1),
            "values_exact": not checker.bad and not ua_incomplete and ua_written == ua_delivered,
            # agent CPU-seconds per 10,000 values read (all protocols): independent of the machine's load
            "agent_cpu_s_per_10k_values": round(cpu_s["agent"] / max(values_counted, 1) * 10_000, 4),
            "opcua_writes_incomplete": len(ua_incomplete),
            "window_read_s": t_end - t_start,
            "values_counted_per_s": {p: round(v, 1) for p, v in rates_counted.items()},
            "values_received_per_s": {p: round(v, 1) for p, v in rates_got.items()},
            "opcua_server_changes_per_s": round(ua_written * args.opcua_items / (t_end - t_start), 1),
            "opcua_writes_lost": ua_written - ua_delivered,
            "server_cpu_percent": {name: round(100.0 * v / span, 1) for name, v in cpu_s.items() if name != "agent"},
            "devices_not_ok": down,
            "inexact": checker.bad[:5],
            "offered": {"modbus_points_per_s": args.modbus_devices * MODBUS_REGS,
                        "opcua_changes_per_s": args.opcua_items * args.opcua_hz,
                        "bacnet_points_per_s": args.bacnet_devices * args.bacnet_objects},
            "machine_load_1min": round(max(load0, os.getloadavg()[0]), 2),
            "cores": os.cpu_count(),
            "window_s": round(span, 1),
        }
        print(f"agent CPU {cpu_pct:.1f} % of one core ({result['agent_cpu_s_per_10k_values']} CPU-s per 10,000 values); "
              f"read/s {result['modbus_points_per_s']} Modbus, {result['opcua_changes_per_s']} OPC UA, "
              f"{result['bacnet_points_per_s']} BACnet; servers' CPU {result['server_cpu_percent']}; "
              f"load {result['machine_load_1min']}; inexact {len(checker.bad)}; OPC UA writes incomplete {len(ua_incomplete)}", flush=True)
        checker.close()
    finally:
        procs += servers.values()
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
