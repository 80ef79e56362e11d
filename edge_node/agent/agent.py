"""The edge agent core: sample sources, compute features, detect anomalies, filter,
buffer in the outbox, and drain the outbox over MQTT.

``Agent.tick(now)`` does one non-blocking round of all of it and returns when it next
needs to run; ``Agent.run(stop)`` loops over ticks for a standalone gateway, and
``fleet.run_fleet`` drives many agents' ticks from one thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import const, contract
from .asset_types import metric_words
from .config import AgentConfig, ConfigError, SourceConfig
from .deploy import agent_keyring, attach_deploy
from .detectors import EwmaDetector
from .field.attach import attach_field
from .filtering import ReadingFilter
from .keyring import KeyringCommands
from .models import AnomalyModel, ModelError, ModelSlot, current_version, load_model
from .mqtt_link import MqttLink
from .netloop import NetLoop
from .outbox import Outbox
from .resources import CpuMeter, memory_mb
from .sources import Sample, Source, SourceError, make_source

log = logging.getLogger(__name__)
# How a JSON telemetry batch encoded with the largest seq starts (see Agent._flush_batch).
PROBE_SEQ_JSON = b'{"seq":%d,' % 2**40


@dataclass
class AssetRuntime:
    cfg: SourceConfig
    source: Source
    slot: ModelSlot | None
    detector: EwmaDetector
    next_due: float = 0.0
    anomalous: bool = False
    severity: str | None = None
    last_alert: float = 0.0
    normal_run: int = 0
    normal_since: float = 0.0  # sim time of the first sample of the current normal run
    model_hits: int = 0  # windows in a row over the model's threshold
    history: dict[str, deque] = field(default_factory=dict)

    @property
    def asset_id(self) -> str:
        return self.cfg.asset


@dataclass
class AgentStats:
    raw_bytes: int = 0  # what shipping every raw sample would have cost
    sent_bytes: int = 0  # MQTT payload + topic bytes handed to the broker (first sends)
    samples: int = 0
    readings_sent: int = 0  # readings put in the outbox (sent now or after a reconnect)
    points_sent: int = 0  # their values (one per metric): what the platform stores as rows
    batches: int = 0
    events: int = 0
    events_by_asset: dict[str, int] = field(default_factory=dict)
    confirmed: int = 0  # messages the platform confirmed (and the outbox let go)
    resent: int = 0  # messages sent again because no confirmation came in time


def _round(v: float) -> float:
    return float(f"{v:.6g}")


def load_models_for(cfg: AgentConfig, asset_types: dict[str, str],
                    cache: dict[str, ModelSlot] | None = None) -> dict[str, ModelSlot | None]:
    """Model slot per asset (None: statistical detection only). Explicitly named models must
    load; the default ``<asset_type>-anomaly`` is used only when present. ``cache`` shares
    one loaded model between agents of a fleet."""
    cache = {} if cache is None else cache
    out: dict[str, ModelSlot | None] = {}
    for sc in cfg.sources:
        asset_type = asset_types[sc.asset]
        name = sc.model or f"{asset_type}{const.DEFAULT_MODEL_SUFFIX}"
        if cfg.models_dir is None:
            if sc.model:
                raise ModelError(f"source {sc.asset}: model {sc.model!r} named but no models_dir configured")
            out[sc.asset] = None
            continue
        if not sc.model and not (cfg.models_dir / name).is_dir():
            out[sc.asset] = None
            continue
        # By version: nodes of a fleet with their own models dirs may run different versions
        # (part-way through a rollout), and each must load its own.
        key = f"{name}@{current_version(cfg.models_dir, name)}"
        if key not in cache:
            model = load_model(cfg.models_dir, name)
            if model.asset_type != asset_type:
                raise ModelError(f"model {model.label} is for {model.asset_type!r}, source {sc.asset} is {asset_type!r}")
            cache[key] = ModelSlot(model)
        out[sc.asset] = cache[key]
    return out


class Agent:
    def __init__(self, cfg: AgentConfig, *, wake: threading.Event | None = None,
                 model_cache: dict[str, ModelSlot] | None = None, t0: float | None = None,
                 net: NetLoop | None = None) -> None:
        """Build everything and validate it (sources, models, state dir); connect nothing.
        Raises ConfigError or ModelError naming the problem."""
        self.cfg = cfg
        self.node_id = cfg.node_id
        self.wake = wake or threading.Event()
        self.stats = AgentStats()
        self.filter = ReadingFilter(cfg.filter)
        self.t0 = time.time() if t0 is None else t0
        self.speedup = cfg.speedup
        # Real devices (point maps): their event loop starts with the agent; readings arrive
        # through one FieldSource per asset, with the time each value was read.
        self.field = attach_field(cfg, self.t0, self.wake)
        sources: dict[str, Source] = {}
        for sc in cfg.sources:
            if sc.plugin == const.FIELD_PLUGIN and self.field is not None:
                sources[sc.asset] = self.field.sources[sc.asset]
                continue
            try:
                source = make_source(sc.plugin, sc.asset, seed=sc.seed, params=sc.params, fail_at=sc.fail_at_s,
                                     age_s=sc.age_s, renew_s=sc.renew_s)
                for fc in sc.faults:
                    source.inject_fault(fc.kind, at=fc.at_s, duration_s=fc.duration_s, magnitude=fc.magnitude)
            except (SourceError, ValueError) as exc:
                raise ConfigError(f"source {sc.asset} ({sc.plugin}): {exc}") from None
            sources[sc.asset] = source
        slots = load_models_for(cfg, {a: s.asset_type for a, s in sources.items()}, model_cache)
        self.assets: dict[str, AssetRuntime] = {}
        for sc in cfg.sources:
            source = sources[sc.asset]
            det = EwmaDetector(source.detect_metrics(), cfg.detect.ewma_alpha,
                               cfg.detect.z_threshold, cfg.detect.warmup)
            self.assets[sc.asset] = AssetRuntime(sc, source, slots.get(sc.asset), det, next_due=self.t0)
        try:
            cfg.state_dir.mkdir(parents=True, exist_ok=True)
            self.outbox = Outbox(cfg.state_dir / f"{cfg.node_id}.outbox.sqlite", cfg.buffer.max_bytes,
                                 cfg.buffer.max_rows)
        except OSError as exc:
            raise ConfigError(f"state_dir {cfg.state_dir}: cannot create the buffer: {exc}") from None
        except sqlite3.DatabaseError as exc:  # a corrupt or foreign file
            raise ConfigError(f"state_dir {cfg.state_dir}: buffer database unusable: {exc}") from None
        self.link = MqttLink(cfg, on_command=self._on_command, wake=self.wake,
                             offline_payload=contract.encode({"state": "offline"}), net=net)
        self.keyring = agent_keyring(cfg)  # the platform's model-signing keys this node trusts
        self.keyring_commands = KeyringCommands(cfg.node_id, self.keyring)
        self.deploy = attach_deploy(self)  # deploy/rollback commands (edge_node/agent/deploy.py)
        self._pending: list[contract.Reading] = []
        self._exact_assets = set(cfg.gateway.assets)
        self._last_flush = self.t0
        self._urgent = False
        self._inflight: dict[int, tuple[int, float]] = {}  # mid -> (row id, sent at): awaiting PUBACK
        self._awaiting: dict[int, float] = {}  # row id -> sent at: PUBACKed, awaiting the platform's confirmation
        self._confirm_timeout = cfg.confirm_timeout_s
        self._connects_seen = 0
        self._cursor = 0
        self._max_sent_id = 0
        self._next_heartbeat = self.t0
        self._status_connects = 0
        self._cpu = CpuMeter()
        self._commands: deque[bytes] = deque()
        self._lock = threading.RLock()  # tick vs inject_fault from other threads
        # Sampling schedule: a heap of (due, n, asset), so a tick touches only due assets
        # (thousands of sensors with staggered phases would make a full scan quadratic).
        self._schedule: list[tuple[float, int, str]] = []
        self._counter = itertools.count()
        for asset in self.assets:
            self.schedule(asset, self.t0)

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        self.link.start()
        if self.field is not None:
            self.field.start()

    def stop(self, deliver_s: float = const.STOP_DELIVER_S) -> None:
        """Flush what is pending into the outbox (it survives), give the platform up to
        ``deliver_s`` to confirm what is unconfirmed, say offline, disconnect."""
        if self.field is not None:
            self.field.stop()
        self.flush_pending()
        if deliver_s > 0:
            self.deliver(deliver_s)
        self.link.stop(final_status=self._encode(self._status("offline", time.time())))
        log.info("node %s: stopped; %d message(s) kept in the buffer for the next start", self.node_id,
                 self.outbox.depth)
        self.outbox.close()

    def run(self, stop: threading.Event) -> None:
        self.start()
        try:
            while not stop.is_set():
                started = time.time()
                next_at = self.tick(started)
                # Sleep until the next due work, but at least MIN_TICK_S: many sensors with
                # staggered phases are then sampled a few per tick, not one per wake-up.
                delay = max(const.MIN_TICK_S - (time.time() - started), min(0.5, next_at - time.time()))
                if delay > 0:
                    self.wake.wait(delay)
                self.wake.clear()
        finally:
            self.stop()

    def flush_pending(self) -> None:
        with self._lock:
            if self._pending:
                self._flush_batch()

    def deliver(self, timeout_s: float) -> bool:
        """Keep sending until the outbox is empty (every message confirmed) or ``timeout_s``
        passes or the link is down; what is left goes out on the next start."""
        deadline = time.monotonic() + timeout_s
        while not self.delivered() and time.monotonic() < deadline:
            self.drain_once()
            self.wake.wait(0.05)
            self.wake.clear()
        return self.delivered()

    def drain_once(self) -> None:
        with self._lock:
            self._drain(time.time())

    def delivered(self) -> bool:
        return self.outbox.depth == 0 or not self.link.connected

    # -- control -----------------------------------------------------------------
    def sim_time(self, now: float) -> float:
        return (now - self.t0) * self.speedup

    def inject_fault(self, asset: str, kind: str | None = None, duration_s: float = 30.0,
                     magnitude: float = 1.0, now: float | None = None) -> None:
        """Start a fault on ``asset`` now (sim time) and sample it at once."""
        now = time.time() if now is None else now
        with self._lock:
            rt = self.assets[asset]
            rt.source.inject_fault(kind, at=self.sim_time(now), duration_s=duration_s * self.speedup,
                                   magnitude=magnitude)
            self.schedule(asset, now)
        self.wake.set()

    def schedule(self, asset: str, at: float) -> None:
        """Sample ``asset`` next at wall time ``at`` (then every sample_interval_s)."""
        with self._lock:
            rt = self.assets[asset]
            rt.next_due = at
            heapq.heappush(self._schedule, (at, next(self._counter), asset))

    def reload_models(self) -> dict[str, str]:
        """Re-read every model's ``current`` pointer and swap in the versions that changed
        (each swap atomic; a model that fails to load leaves the old one running and raises
        ModelError). Returns {name: new version} for what changed."""
        changed: dict[str, str] = {}
        slots = {id(rt.slot): rt.slot for rt in self.assets.values() if rt.slot is not None}
        for slot in slots.values():
            old = slot.model
            new = load_model(self.cfg.models_dir, old.name)
            if new.version != old.version:
                if new.asset_type != old.asset_type:
                    raise ModelError(f"model {new.label} is for {new.asset_type!r}, not {old.asset_type!r}")
                slot.swap(new)
                changed[new.name] = new.version
        return changed

    def model_versions(self) -> dict[str, str]:
        seen = {}
        for rt in self.assets.values():
            if rt.slot is not None:
                m = rt.slot.model
                seen[m.name] = m.version
        return seen

    # -- the loop step -----------------------------------------------------------
    def tick(self, now: float) -> float:
        with self._lock:
            self._handle_commands(now)
            if self.field is not None:
                self._emit_device_events()
            sim_t = self.sim_time(now)
            due: list[tuple[AssetRuntime, Sample]] = []
            heap = self._schedule
            while heap and heap[0][0] <= now:
                at, _, asset = heapq.heappop(heap)
                rt = self.assets[asset]
                if at != rt.next_due:
                    continue  # superseded by a later schedule() call
                for sample in rt.source.step(sim_t):
                    due.append((rt, sample))
                interval = rt.cfg.sample_interval_s
                rt.next_due += interval
                if rt.next_due <= now:
                    rt.next_due = now + interval
                heapq.heappush(heap, (rt.next_due, next(self._counter), asset))
            scores = self._score(due)
            for (rt, sample), score in zip(due, scores, strict=True):
                ts = now - (sim_t - sample.sim_t) / self.speedup
                self._process(rt, sample, ts, now, score)
            if self._pending and (self._urgent or now - self._last_flush >= self.cfg.publish_interval_s):
                self._flush_batch()
                self._last_flush = now
            if not self._pending:
                self._last_flush = max(self._last_flush, now - self.cfg.publish_interval_s)
            self._urgent = False
            self._drain(now)
            # Right after every (re)connect too: the retained status may still be the last
            # will's "offline".
            if self.link.connected and (now >= self._next_heartbeat or self.link.connects != self._status_connects):
                self._status_connects = self.link.connects
                self._heartbeat(now)
            nxt = heap[0][0] if heap else now + 1.0
            nxt = min(nxt, self._next_heartbeat if self.link.connected else nxt)
            if self._pending:
                nxt = min(nxt, self._last_flush + self.cfg.publish_interval_s)
            return nxt

    def _score(self, due: list[tuple[AssetRuntime, Sample]]) -> list[float | None]:
        """Model scores of this tick's samples: one onnxruntime call per model for all the
        assets using it (a call costs ~10 us; a row inside a batch well under 1 us)."""
        scores: list[float | None] = [None] * len(due)
        groups: dict[int, tuple[AnomalyModel, list[int]]] = {}
        for i, (rt, _) in enumerate(due):
            if rt.slot is not None:
                model = rt.slot.model
                groups.setdefault(id(model), (model, []))[1].append(i)
        for model, idx in groups.values():
            rows, kept = [], []
            for i in idx:
                values = due[i][1].values
                try:
                    rows.append([values[f] for f in model.features])
                except KeyError:
                    continue  # a sample without the model's inputs is left to the EWMA detector
                kept.append(i)
            if rows:
                for i, score in zip(kept, model.score_batch(np.asarray(rows, dtype=np.float32)), strict=True):
                    scores[i] = float(score)
        return scores

    def _process(self, rt: AssetRuntime, sample: Sample, ts: float, now: float, score: float | None) -> None:
        st = self.stats
        st.samples += 1
        st.raw_bytes += sample.raw_bytes
        values = sample.values
        for k, v in values.items():
            h = rt.history.get(k)
            if h is None:
                h = rt.history[k] = deque(maxlen=const.SNIPPET_HISTORY)
            h.append(v)
        finding = self._detect(rt, values, score)
        if finding is not None:
            rt.normal_run = 0
            severity = finding["severity"]
            escalated = rt.severity == "warning" and severity == "critical"
            if not rt.anomalous or escalated or now - rt.last_alert >= self.cfg.detect.realert_s > 0:
                rt.anomalous = True
                rt.severity = severity
                rt.last_alert = now
                self._emit_event(rt, sample, ts, finding)
                self._add_reading(rt.asset_id, ts, self.filter.flush(rt.asset_id, ts, values))
                self._urgent = True
                return
        elif rt.anomalous:
            # Hysteresis: only a score clearly under the threshold counts towards "normal",
            # so an asset hovering at the threshold does not flap between states.
            model = rt.slot.model if rt.slot is not None else None
            clearly_normal = model is None or score is None or score < model.threshold - const.CLEAR_SCORE_MARGIN
            rt.normal_run = rt.normal_run + 1 if clearly_normal else 0
            if rt.normal_run == 1:
                rt.normal_since = sample.sim_t
            if rt.normal_run >= const.CLEAR_AFTER_SAMPLES and sample.sim_t - rt.normal_since >= const.CLEAR_AFTER_S:
                rt.anomalous = False
                rt.severity = None
                self._emit_event(rt, sample, ts, {"kind": "anomaly_cleared", "severity": "info",
                                                  "message": f"{rt.asset_id} back to normal"})
                self._add_reading(rt.asset_id, ts, self.filter.flush(rt.asset_id, ts, values))
                self._urgent = True
                return
        out = self.filter.add(rt.asset_id, ts, values)
        if out:
            self._add_reading(rt.asset_id, ts, out)

    def _detect(self, rt: AssetRuntime, values: dict[str, float], score: float | None) -> dict[str, Any] | None:
        model: AnomalyModel | None = rt.slot.model if rt.slot is not None else None
        if model is not None:
            rt.model_hits = rt.model_hits + 1 if score is not None and score > model.threshold else 0
            if score is not None and rt.model_hits >= model.consecutive:
                severity = "critical" if score > model.critical_threshold else "warning"
                return {"kind": "anomaly", "severity": severity, "score": score, "model_version": model.label,
                        "message": f"Unusual combination of readings (anomaly model {model.label}: score {score:.2f}, "
                                   f"alarm above {model.threshold:.2f})",
                        "metrics": model.features}
        z = rt.detector.update(values)
        if z is not None:
            metric, zval = z
            severity = "critical" if abs(zval) > 2 * rt.detector.z_threshold else "warning"
            label, unit = metric_words(rt.source.asset_type, metric)
            return {"kind": "anomaly", "severity": severity, "score": abs(zval), "model_version": "ewma-z",
                    "message": f"{label} {'jumped' if zval > 0 else 'dropped'} to {values[metric]:.4g}{unit} "
                               f"({abs(zval):.0f} standard deviations from its recent level)",
                    "metrics": [metric]}
        return None

    def _snippet(self, rt: AssetRuntime, sample: Sample, metrics: list[str]) -> dict[str, list[float]]:
        snippet: dict[str, list[float]] = {}
        if sample.raw:
            for name, x in sample.raw.items():
                centre = int(np.argmax(np.abs(x)))
                half = const.SNIPPET_RAW_SAMPLES // 2
                lo = max(0, min(len(x) - const.SNIPPET_RAW_SAMPLES, centre - half))
                snippet[name] = [round(float(v), 3) for v in x[lo: lo + const.SNIPPET_RAW_SAMPLES]]
        for m in metrics[:4]:
            if m in rt.history:
                snippet[m] = [_round(v) for v in rt.history[m]]
        return snippet

    def _emit_event(self, rt: AssetRuntime, sample: Sample, ts: float, finding: dict[str, Any]) -> None:
        event: dict[str, Any] = {"asset": rt.asset_id, "ts": float(ts), "kind": finding["kind"],
                                 "severity": finding["severity"], "message": finding.get("message", "")}
        if "score" in finding:
            event["score"] = _round(finding["score"])
            event["model_version"] = finding["model_version"]
            event["snippet"] = self._snippet(rt, sample, finding.get("metrics", []))

        def build(seq: int) -> bytes:
            event["seq"] = seq
            return self._encode(event)

        self.outbox.put("events", build)
        self.stats.events += 1
        self.stats.events_by_asset[rt.asset_id] = self.stats.events_by_asset.get(rt.asset_id, 0) + 1
        log.info("node %s: %s %s on %s", self.node_id, finding["severity"], finding["kind"], rt.asset_id)

    def _emit_device_events(self) -> None:
        """Device-status events of the field devices (one per change and asset, see field/health.py)."""
        logged = set()
        for event in self.field.health.pop_events():  # type: ignore[union-attr]
            self.outbox.put("events", lambda seq, event=event: self._encode({**event, "seq": seq}))
            self.stats.events += 1
            asset = event["asset"]
            self.stats.events_by_asset[asset] = self.stats.events_by_asset.get(asset, 0) + 1
            if event["message"] not in logged:  # a device feeding 20 assets: one log line, 20 events
                logged.add(event["message"])
                log.log(logging.WARNING if event["severity"] != "info" else logging.INFO, "node %s: %s", self.node_id, event["message"])

    def _add_reading(self, asset: str, ts: float, values: dict[str, float]) -> None:
        if asset in self._exact_assets:
            # A device's value as read (converted and scaled), not rounded to 6 digits: an
            # energy counter of 12,345,678 Wh must arrive as that.
            self._pending.append({"asset": asset, "ts": float(ts), "values": {k: float(v) for k, v in values.items()}})
            return
        self._pending.append({"asset": asset, "ts": float(ts), "values": {k: _round(v) for k, v in values.items()}})

    def _flush_batch(self) -> None:
        pending, self._pending = self._pending, []
        chunks = [pending[i: i + const.MAX_READINGS_PER_BATCH]
                  for i in range(0, len(pending), const.MAX_READINGS_PER_BATCH)]
        while chunks:
            chunk = chunks.pop(0)
            # The ingest refuses payloads over its size limit: halve a batch until it fits.
            probe = self._encode({"seq": 2**40, "readings": chunk}) if len(chunk) > 1 else b""
            if len(probe) > const.MAX_BATCH_BYTES:
                half = len(chunk) // 2
                chunks[:0] = [chunk[:half], chunk[half:]]
                continue
            if probe.startswith(PROBE_SEQ_JSON):
                # JSON: the payload is the probe with its seq (encoding a batch once, not twice)
                build = lambda seq, rest=probe[len(PROBE_SEQ_JSON):]: b'{"seq":%d,' % seq + rest  # noqa: E731
            else:
                build = lambda seq, chunk=chunk: self._encode({"seq": seq, "readings": chunk})  # noqa: E731
            self.outbox.put("telemetry", build)
            self.stats.batches += 1
            self.stats.readings_sent += len(chunk)
            self.stats.points_sent += sum(len(r["values"]) for r in chunk)

    def _encode(self, payload: dict[str, Any]) -> bytes:
        return contract.encode(payload, self.cfg.payload_format)  # type: ignore[arg-type]

    # -- sending -----------------------------------------------------------------
    def _drain(self, now: float) -> None:
        """Send what the outbox holds, in order, within the in-flight and unconfirmed windows.

        ``delivery = "confirmed"``: a row leaves the outbox only when the platform confirms it
        stored it; what stays unconfirmed is sent again after a reconnect or a timeout (the
        ingest drops the copies by seq). ``"broker"``: a row leaves on the broker's PUBACK.
        """
        confirmed_mode = self.cfg.delivery == "confirmed"
        done = []
        for mid in self.link.pop_acked():
            entry = self._inflight.pop(mid, None)
            if entry is None:
                continue
            if confirmed_mode:
                self._awaiting[entry[0]] = entry[1]
            else:
                done.append(entry[0])
        self.outbox.delete(done)
        for confirmation in self.link.pop_confirmed():
            self._confirm_timeout = self.cfg.confirm_timeout_s  # the platform is there
            for channel, ranges in confirmation.items():
                ids = set(self.outbox.confirm(channel, ranges))
                self.stats.confirmed += len(ids)
                for row_id in ids:
                    self._awaiting.pop(row_id, None)
                if ids and self._inflight:  # confirmed before its PUBACK arrived
                    self._inflight = {m: e for m, e in self._inflight.items() if e[0] not in ids}
        if not self.link.connected:
            return
        if self.link.connects != self._connects_seen:
            # A new connection: the broker may have lost what it acknowledged (a crash), and
            # the platform's confirmations sent meanwhile are gone. Send every unconfirmed row again.
            self._connects_seen = self.link.connects
            self._resend_all()
        if self._inflight and now - min(t for _, t in self._inflight.values()) > const.INFLIGHT_TIMEOUT_S:
            log.warning("node %s: %d message(s) unacknowledged for %.0f s; sending them again",
                        self.node_id, len(self._inflight), const.INFLIGHT_TIMEOUT_S)
            self._resend_all()
        if self._awaiting and now - min(self._awaiting.values()) > self._confirm_timeout:
            log.warning("node %s: %d message(s) not confirmed by the platform for %.0f s; sending them again",
                        self.node_id, len(self._awaiting), self._confirm_timeout)
            self.stats.resent += len(self._awaiting)
            self._confirm_timeout = min(self._confirm_timeout * 2, const.CONFIRM_TIMEOUT_MAX_S)
            self._resend_all()
        room = const.MAX_INFLIGHT - len(self._inflight)
        if confirmed_mode:
            room = min(room, const.MAX_UNCONFIRMED - len(self._inflight) - len(self._awaiting))
        while room > 0:
            rows = self.outbox.peek(self._cursor, min(room, const.DRAIN_CHUNK))
            if not rows:
                break
            for row in rows:
                mid = self.link.publish(row.channel, row.payload, qos=1)  # type: ignore[arg-type]
                self._inflight[mid] = (row.id, now)
                self._cursor = row.id
                if row.id > self._max_sent_id:  # first sends only: copies are counted in resent
                    self._max_sent_id = row.id
                    self.stats.sent_bytes += len(row.payload) + len(self.node_id) + len(row.channel) + 16
                room -= 1

    def _resend_all(self) -> None:
        self._inflight.clear()
        self._awaiting.clear()
        self._cursor = 0

    # -- status and commands -------------------------------------------------------
    def _status(self, state: str, now: float) -> dict[str, Any]:
        versions = {"agent": const.AGENT_VERSION, "contract": "v1", "keyring": str(self.keyring.version)}
        models = self.model_versions()
        if models:
            versions["model"] = ",".join(f"{n}@{v}" for n, v in sorted(models.items()))
            versions.update({f"model:{n}": v for n, v in models.items()})
        return {
            "state": state, "ts": now, "versions": versions, "cpu_percent": self._cpu.percent(),
            "memory_mb": memory_mb(), "buffer_depth": self.outbox.depth, "dropped": self.outbox.dropped,
            "delivery": self.cfg.delivery,
            "assets": len(self.assets), "raw_bytes": self.stats.raw_bytes, "sent_bytes": self.stats.sent_bytes,
            # Since this process started: what an operator (or the production check) compares
            # with what the platform stored.
            "readings_queued": self.stats.readings_sent, "points_queued": self.stats.points_sent,
            **({"devices": self.field.health.snapshot()} if self.field is not None else {}),
        }

    def _heartbeat(self, now: float) -> None:
        self._next_heartbeat = now + self.cfg.heartbeat_interval_s
        payload = self._encode(self._status("online", now))
        self.link.publish("status", payload, qos=1, retain=True)

    def _on_command(self, payload: bytes) -> None:
        # Network thread: queue it; tick() handles it under the agent's lock.
        self._commands.append(payload)
        self.wake.set()

    def _handle_commands(self, now: float) -> None:
        while self._commands:
            raw = self._commands.popleft()
            try:
                cmd = contract.decode(raw)
                cid = str(cmd["id"])
                ctype = cmd["type"]
                args = cmd.get("args") or {}
            except (contract.PayloadError, KeyError, TypeError) as exc:
                log.warning("node %s: unreadable command ignored: %s", self.node_id, exc)
                continue
            if self.deploy is not None and self.deploy.handles(ctype):
                self.deploy.submit(cid, ctype, args)  # it acks each stage itself, from its worker
                continue
            if self.keyring_commands.handles(ctype) and isinstance(args, dict):
                self.link.publish("cmd/ack", self._encode(self.keyring_commands.handle(cid, args)), qos=1)
                continue
            ok, detail = False, f"unsupported command type {ctype!r}"
            if ctype == "inject_fault":
                try:
                    self.inject_fault(str(args["asset"]), args.get("kind"), float(args.get("duration_s", 30.0)),
                                      float(args.get("magnitude", 1.0)), now=now)
                    ok, detail = True, f"fault injected on {args['asset']}"
                except (KeyError, SourceError, ValueError, TypeError) as exc:
                    ok, detail = False, f"cannot inject fault: {exc}"
            elif ctype == "ping":
                ok, detail = True, "pong"
            elif ctype == "reload_models":
                try:
                    changed = self.reload_models()
                    ok, detail = True, f"now running {self.model_versions() or 'no model'}; changed {changed or 'none'}"
                except ModelError as exc:
                    ok, detail = False, str(exc)
            ack = {"id": cid, "ok": ok, "detail": detail}
            self.link.publish("cmd/ack", self._encode(ack), qos=1)


def build_agent(cfg: AgentConfig, **kwargs: Any) -> Agent:
    """Validate and build an agent; ConfigError/ModelError carry a message naming the problem."""
    if cfg.models_dir is not None and not Path(cfg.models_dir).is_dir():
        raise ConfigError(f"models_dir {cfg.models_dir} does not exist")
    return Agent(cfg, **kwargs)
