"""Edge agent benchmark: bandwidth saving, ONNX vs scikit-learn inference, sensors per half core.

Run from the repository root: ``.venv/bin/python bench/edge.py`` (needs the broker at
$MQTT_TEST_URL, default mqtt://127.0.0.1:1883). Prints its figures; the last line is JSON.

1. Bandwidth: the real agent pipeline (sources -> features -> ONNX + EWMA detection ->
   deadband/aggregation -> SQLite outbox -> MQTT QoS 1) runs one simulated hour of 4
   motors with a continuous 10 kHz vibration channel (1 s windows) plus 4 pumps and 4 HVAC
   units, on a simulated clock (as fast as the CPU allows). A paho subscriber on the real
   broker counts the bytes that arrive; raw bytes are what shipping every sample would cost
   (vibration as float32, slow channels as float64). 12 faults are injected; each counts
   as delivered when an anomaly event for its asset arrives during it.
2. Inference: one window through onnxruntime (the agent's compact export, and skl2onnx's
   stock converter for reference) vs the same IsolationForest's decision_function in
   scikit-learn (p50/p99 over many single-row calls).
3. Capacity: N slow sources (pumps, HVAC units, C-MAPSS engines; each one reading per
   second) in one agent on the real wall clock; CPU time (time.process_time, all threads)
   over a fixed wall window; N doubles until the agent passes 50% of one core.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np
import paho.mqtt.client as mqtt

from edge_node.agent import contract
from edge_node.agent.agent import Agent
from edge_node.agent.config import (
    AgentConfig,
    BrokerConfig,
    FilterConfig,
    MetricFilter,
    SourceConfig,
)
from edge_node.agent.train_anomaly import (
    export_onnx,
    healthy_windows,
    train_anomaly_model,
)

BROKER = os.environ.get("MQTT_TEST_URL", "mqtt://127.0.0.1:1883")
MOTOR_PARAMS = {"window_s": 1.0}  # continuous 10 kHz: every sample of every second is generated
SIM_SECONDS = 3600
FAULTS = [  # (asset, kind)
    ("m0", "bearing_impact"), ("p0", "cavitation"), ("h0", "compressor_trip"), ("m1", "imbalance"),
    ("p1", "blockage"), ("h1", "fan_failure"), ("m2", "overheat"), ("p2", "bearing_overheat"),
    ("h2", "co2_sensor_spike"), ("m3", "bearing_impact"), ("p3", "cavitation"), ("h3", "compressor_trip"),
]
FAULT_S = 60.0


def bench_filter() -> FilterConfig:
    """A gateway's usual filter: one aggregate a minute, sent only when it moved 2%."""
    return FilterConfig(aggregate_window_s=60.0, deadband_pct=2.0, max_silence_s=900.0, metrics={
        "vib_kurtosis": MetricFilter(deadband=1.0, window_s=60.0, aggregate="max"),
        "vib_peak": MetricFilter(deadband_pct=10.0, window_s=60.0, aggregate="max"),
        "occupancy": MetricFilter(deadband=5.0, window_s=60.0, aggregate="max"),
    })


class Counter:
    def __init__(self, node: str) -> None:
        parts = urlsplit(BROKER)
        self.bytes = 0
        self.telemetry_seqs: set[int] = set()
        self.events: list[dict] = []
        self.lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{uuid.uuid4().hex[:6]}")
        self.client.on_connect = lambda c, *a: c.subscribe(f"aiot/v1/{node}/+", qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()
        if not ready.wait(10):
            raise SystemExit(f"cannot subscribe at {BROKER}")

    def _on_message(self, client, userdata, msg) -> None:
        channel = msg.topic.rsplit("/", 1)[-1]
        if channel not in ("telemetry", "events"):
            return
        body = contract.decode(msg.payload)
        with self.lock:
            self.bytes += len(msg.payload) + len(msg.topic)
            if channel == "telemetry":
                self.telemetry_seqs.add(body["seq"])
            else:
                self.events.append(body)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def bandwidth(models: Path, state: Path) -> dict:
    node = f"bench-edge-{uuid.uuid4().hex[:6]}"
    sources = [SourceConfig("induction_motor", f"m{i}", seed=i, params=dict(MOTOR_PARAMS)) for i in range(4)]
    sources += [SourceConfig("centrifugal_pump", f"p{i}", seed=10 + i) for i in range(4)]
    sources += [SourceConfig("hvac_unit", f"h{i}", seed=20 + i) for i in range(4)]
    cfg = AgentConfig(node_id=node, broker=BrokerConfig(url=BROKER), sources=sources, filter=bench_filter(),
                      models_dir=models, state_dir=state, publish_interval_s=1.0, heartbeat_interval_s=60.0)
    t0 = time.time()
    agent = Agent(cfg, t0=t0)
    faults = []
    for k, (asset, kind) in enumerate(FAULTS):
        at = 300.0 + k * 270.0
        agent.assets[asset].source.inject_fault(kind, at=at, duration_s=FAULT_S)
        faults.append((asset, kind, t0 + at, t0 + at + FAULT_S))
    counter = Counter(node)
    agent.start()
    deadline = time.time() + 10
    while not agent.link.connected and time.time() < deadline:
        time.sleep(0.05)
    started = time.perf_counter()
    for s in range(SIM_SECONDS + 1):
        agent.tick(t0 + s)
    for extra in range(1, 200):  # drain what is left (acks arrive on the network thread)
        agent.tick(t0 + SIM_SECONDS + extra * 0.001)
        if agent.outbox.depth == 0:
            break
        time.sleep(0.02)
    last_seq = agent.outbox.last_seq("telemetry")
    deadline = time.time() + 15
    while time.time() < deadline and (len(counter.telemetry_seqs) < last_seq or len(counter.events) < agent.stats.events):
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    agent.stop()
    counter.close()
    anomalies = [e for e in counter.events if e["kind"] == "anomaly"]
    delivered = sum(
        1 for asset, _, start, end in faults
        if any(e["asset"] == asset and start <= e["ts"] <= end + 5.0 for e in anomalies)
    )
    in_fault = [e for e in anomalies if any(e["asset"] == a and s <= e["ts"] <= en + 5.0 for a, _, s, en in faults)]
    raw = agent.stats.raw_bytes
    return {
        "sim_seconds": SIM_SECONDS, "elapsed_s": round(elapsed, 1), "raw_bytes": raw, "received_bytes": counter.bytes,
        "agent_sent_bytes": agent.stats.sent_bytes, "bandwidth_ratio": counter.bytes / raw,
        "batches": last_seq, "batches_received": len(counter.telemetry_seqs),
        "anomalies_injected": len(faults), "anomalies_delivered": delivered,
        "anomaly_events": len(anomalies), "anomaly_events_outside_faults": len(anomalies) - len(in_fault),
        "missed": [f"{a}:{k}" for a, k, s, e in faults
                   if not any(ev["asset"] == a and s <= ev["ts"] <= e + 5.0 for ev in anomalies)],
    }


def inference(work: Path) -> dict:
    import onnxruntime as ort
    from sklearn.ensemble import IsolationForest

    x = healthy_windows("induction_motor", 1000, params=MOTOR_PARAMS)
    model = IsolationForest(n_estimators=100, random_state=0).fit(x)
    rows = [x[i: i + 1] for i in range(len(x))]
    sessions = {}
    agree = 0.0
    for exporter in ("compact", "skl2onnx"):
        path = work / f"iforest-{exporter}.onnx"
        path.write_bytes(export_onnx(model, x, exporter).SerializeToString())
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        sessions[exporter] = sess
        onnx_scores = np.array([sess.run(["scores"], {"X": r})[0][0, 0] for r in rows[:200]])
        agree = max(agree, float(np.max(np.abs(onnx_scores - model.decision_function(x[:200])))))

    def timings(fn, n: int) -> np.ndarray:
        for r in rows[:20]:
            fn(r)
        out = np.empty(n)
        for i in range(n):
            r = rows[i % len(rows)]
            t = time.perf_counter()
            fn(r)
            out[i] = time.perf_counter() - t
        return out * 1e6

    onnx_us = timings(lambda r: sessions["compact"].run(["scores"], {"X": r}), 5000)
    stock_us = timings(lambda r: sessions["skl2onnx"].run(["scores"], {"X": r}), 1000)
    skl_us = timings(model.decision_function, 300)
    return {
        "skl2onnx_p50_us": float(np.percentile(stock_us, 50)), "skl2onnx_p99_us": float(np.percentile(stock_us, 99)),
        "onnx_p50_us": float(np.percentile(onnx_us, 50)), "onnx_p99_us": float(np.percentile(onnx_us, 99)),
        "sklearn_p50_us": float(np.percentile(skl_us, 50)), "sklearn_p99_us": float(np.percentile(skl_us, 99)),
        "onnx_vs_sklearn_max_abs_diff": agree,
    }


def cpu_fraction(n: int, models: Path, state: Path, window_s: float = 3.0) -> float:
    """CPU share of one core used by an agent stepping n slow sources at 1 reading/s each."""
    plugins = ["centrifugal_pump", "hvac_unit", "turbofan"]
    sources = [SourceConfig(plugins[i % 3], f"s{i}", seed=i) for i in range(n)]
    cfg = AgentConfig(node_id=f"bench-cap-{uuid.uuid4().hex[:6]}", broker=BrokerConfig(url=BROKER), sources=sources,
                      filter=bench_filter(), models_dir=models, state_dir=state, heartbeat_interval_s=10.0)
    agent = Agent(cfg)
    for i, asset in enumerate(agent.assets):
        agent.schedule(asset, agent.t0 + 1.0 + i / n)  # sensors are not synchronised: spread them over the second
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    runner.start()  # the agent's own run loop, as on a gateway
    try:
        time.sleep(1.5)  # connect, first samples
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(window_s)
        return (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    finally:
        stop.set()
        runner.join(30)


def capacity(models: Path, state: Path) -> dict:
    ramp = {}
    best = 0
    n = 400
    while n <= 25_600:
        frac = cpu_fraction(n, models, state / f"n{n}")
        ramp[n] = round(frac, 3)
        print(f"  {n:6d} sensors at 1 reading/s: {100 * frac:5.1f}% of one core", flush=True)
        if frac >= 0.5:
            break
        best = n
        n *= 2
    if n <= 25_600 and best:
        mid = (best + n) // 2  # one bisection step between the last two
        frac = cpu_fraction(mid, models, state / f"n{mid}")
        ramp[mid] = round(frac, 3)
        print(f"  {mid:6d} sensors at 1 reading/s: {100 * frac:5.1f}% of one core", flush=True)
        if frac < 0.5:
            best = mid
    return {"sensors_per_half_core": best, "cpu_ramp": ramp}


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-edge-"))
    try:
        t = time.perf_counter()
        models = work / "models"
        train_anomaly_model("induction_motor", models, n_windows=800, params=MOTOR_PARAMS)
        train_anomaly_model("centrifugal_pump", models, n_windows=800)
        train_anomaly_model("hvac_unit", models, n_windows=800)
        train_anomaly_model("turbofan", models)
        print(f"trained 4 anomaly models in {time.perf_counter() - t:.1f} s", flush=True)

        bw = bandwidth(models, work / "state-bw")
        print(f"bandwidth: {bw['received_bytes']:,} bytes received for {bw['raw_bytes']:,} raw bytes "
              f"({100 * bw['bandwidth_ratio']:.4f}%), {bw['sim_seconds']} sim s in {bw['elapsed_s']} s; "
              f"batches {bw['batches_received']}/{bw['batches']}; anomalies delivered "
              f"{bw['anomalies_delivered']}/{bw['anomalies_injected']} "
              f"({bw['anomaly_events']} anomaly events, {bw['anomaly_events_outside_faults']} outside a fault)"
              + (f"; missed {bw['missed']}" if bw["missed"] else ""), flush=True)
        inf = inference(work)
        print(f"inference, one window: ONNX p50 {inf['onnx_p50_us']:.0f} us p99 {inf['onnx_p99_us']:.0f} us; "
              f"scikit-learn p50 {inf['sklearn_p50_us']:.0f} us p99 {inf['sklearn_p99_us']:.0f} us "
              f"({inf['sklearn_p99_us'] / inf['onnx_p99_us']:.0f}x at p99); skl2onnx's stock graph p50 "
              f"{inf['skl2onnx_p50_us']:.0f} us p99 {inf['skl2onnx_p99_us']:.0f} us; max |diff| "
              f"{inf['onnx_vs_sklearn_max_abs_diff']:.1e}", flush=True)
        print("capacity (pumps, HVAC units, C-MAPSS engines; features, EWMA + ONNX, filter, outbox, MQTT):")
        cap = capacity(models, work / "state-cap")
        print(f"sensors per half core: {cap['sensors_per_half_core']}")
        result = {
            "bandwidth_ratio": round(bw["bandwidth_ratio"], 6),
            "anomalies_injected": bw["anomalies_injected"],
            "anomalies_delivered": bw["anomalies_delivered"],
            "onnx_p99_us": round(inf["onnx_p99_us"], 1),
            "sklearn_p99_us": round(inf["sklearn_p99_us"], 1),
            "sensors_per_half_core": cap["sensors_per_half_core"],
        }
        print(json.dumps(result))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
