"""Model deployment on the node: the ``deploy`` and ``rollback`` commands.

``deploy`` args (sent by edge_node/rollouts/driver.py)::

    {"rollout": 7, "url": ".../api/models/12/download", "manifest": {name, version, kind, sha256, size,
     inputs, outputs, meta}, "signature": "<base64 Ed25519>", "key_id": "<16 hex>", "gates": {"max_p99_latency_ms",
     "min_agreement"}, "shadow_windows": 200, "jitter_s": 0.5, "downgrade": false, "auth": [{"key_id", "signature"}]}

``auth`` signs the whole command for this node (edge_node/agent/keyring.py); when present it
must verify. An older version than the running one (or another artifact under the running
version) is refused unless ``downgrade`` is true in a command that carries a valid ``auth``:
an explicit rollback the platform signed and audited (edge_node/agent/versions.py).

Steps, each reported on cmd/ack (``report.stage``; ``report.final`` on the last one):
wait a random jitter, download with the node's HTTP credentials (from the configured platform
URL only: the secret never goes elsewhere), check size, SHA-256 and the Ed25519 signature
against the keyring (the key named by ``key_id``; a revoked key is refused), write ``models/<name>/<version>/`` through a hidden temp dir
(fsync, rename), open a fresh onnxruntime session, shadow-run it beside the current model on
the node's live windows (p99 latency, agreement of the anomaly decision), and switch when the
gates pass: ``previous`` pointer, then ``current`` pointer (each an fsynced atomic rename),
then the in-memory slot. Until the ``current`` rename the old model is what a restart loads.
An artifact that fails any check is never loaded; the refusal and its reason go on cmd/ack.

``rollback`` args: {"name", "version", "to_version"?, "auth"}: if ``version`` is running, switch back to
``to_version`` (default: the ``previous`` pointer), instantly from memory when it is still loaded.
It must be signed (it puts an older version back); not to a version signed with a revoked key.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import shutil
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from . import const
from .artifact import ArtifactRefused, verify_artifact
from .config import ConfigError, PlatformConfig
from .keyring import CommandRefused, Keyring, KeyringError
from .models import (
    AnomalyModel,
    ModelError,
    ModelSlot,
    current_version,
    load_model,
    set_current,
)
from .versions import downgrade_of

log = logging.getLogger(__name__)

PREVIOUS_POINTER = "previous"
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "signature"
SIGNING_KEY_FILE = "signing_key"  # the id of the key that signed it (checked again on rollback)
DOWNLOAD_TIMEOUT_S = 30.0
MAX_ARTIFACT_BYTES = 512 * 1024 * 1024
SEEN_COMMANDS = 256
# Tests set this to a checkpoint name to kill the process there (a crash at that point).
CRASH_ENV = "AIOT_AGENT_CRASH_AT"

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def shared_executor(workers: int = 4) -> ThreadPoolExecutor:
    """One small pool for every node in the process (a fleet of 500 shares it)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deploy")
        return _executor


def _checkpoint(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        log.error("deploy: crashing at checkpoint %s (%s is set)", name, CRASH_ENV)
        os._exit(70)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_pointer(models_dir: Path, name: str, pointer: str, version: str) -> None:
    """Atomically (and durably) point ``models/<name>/<pointer>`` at ``version``."""
    folder = Path(models_dir) / name
    tmp = folder / f".{pointer}.{os.getpid()}.{threading.get_ident()}.tmp"
    _write_file(tmp, (version + "\n").encode())
    os.replace(tmp, folder / pointer)
    _fsync_dir(folder)


def read_pointer(models_dir: Path, name: str, pointer: str) -> str | None:
    try:
        return (Path(models_dir) / name / pointer).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def install_version(models_dir: Path, manifest: dict[str, Any], data: bytes, signature: str, key_id: str = "") -> Path:
    """Write a verified artifact as ``models/<name>/<version>/`` (temp dir, fsync, rename).
    An existing folder of the same version is kept when it holds the same bytes."""
    name, version = str(manifest["name"]), str(manifest["version"])
    if not name or not version or any(c in name + version for c in "/\\") or ".." in name + version or version.startswith("."):
        raise ArtifactRefused("bad_manifest", f"unsafe model name/version {name!r}/{version!r}")
    root = Path(models_dir) / name
    root.mkdir(parents=True, exist_ok=True)
    final = root / version
    if (final / const.MODEL_FILE).is_file():
        if (final / const.MODEL_FILE).read_bytes() == data:
            return final
        shutil.rmtree(final)  # a different file under the same version: never what was signed
    tmp = root / f".{version}.{os.getpid()}.{threading.get_ident()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    meta = dict(manifest.get("meta") or {})
    meta.update(name=name, version=version)
    _write_file(tmp / const.MODEL_FILE, data)
    _write_file(tmp / const.MODEL_META_FILE, json.dumps(meta, indent=2).encode())
    _write_file(tmp / MANIFEST_FILE, json.dumps(manifest, sort_keys=True).encode())
    _write_file(tmp / SIGNATURE_FILE, signature.encode())
    if key_id:
        _write_file(tmp / SIGNING_KEY_FILE, key_id.encode())
    _fsync_dir(tmp)
    _checkpoint("before_version_rename")
    os.replace(tmp, final)
    _fsync_dir(root)
    return final


def switch_current(models_dir: Path, name: str, version: str) -> str | None:
    """Make ``version`` current, remembering the old one as ``previous``; returns the old version.
    A crash before the ``current`` rename leaves the old model as what a restart loads."""
    try:
        old = current_version(models_dir, name)
    except ModelError:
        old = None
    if old and old != version:
        write_pointer(models_dir, name, PREVIOUS_POINTER, old)
    _checkpoint("before_current_rename")
    set_current(models_dir, name, version)
    _fsync_dir(Path(models_dir) / name)
    return old


def shadow_compare(new: AnomalyModel, old: AnomalyModel | None, rows: np.ndarray | None, limit: int) -> dict[str, Any]:
    """Run the new model window by window (as the node does) beside the old one: p99 latency of
    the new one in ms, and the share of windows where both make the same anomaly decision."""
    width = len(new.features)
    if rows is None or len(rows) == 0:
        rows = np.zeros((1, width), dtype=np.float32)
        live = 0
    else:
        rows = np.asarray(rows, dtype=np.float32)[-limit:]
        live = len(rows)
    times, new_scores, old_times = [], [], []
    same_inputs = old is not None and list(old.features) == list(new.features)
    new.score_batch(rows[:1])  # first call allocates; not a window's cost
    if same_inputs:
        old.score_batch(rows[:1])
    for row in rows:
        t0 = time.perf_counter()
        new_scores.append(float(new.score_batch(row[None, :])[0]))
        times.append((time.perf_counter() - t0) * 1000.0)
        if same_inputs:  # the current model, window by window in the same run: the host's load hits both alike
            t0 = time.perf_counter()
            old.score_batch(row[None, :])
            old_times.append((time.perf_counter() - t0) * 1000.0)
    report: dict[str, Any] = {"windows": live, "latency_p99_ms": round(float(np.percentile(times, 99)), 4),
                              "latency_mean_ms": round(float(np.mean(times)), 4), "agreement": None}
    if old_times:
        # The ratio of medians: a busy host lengthens the tail of both runs at random, the middle
        # hardly; a model that is truly slower is slower in every window.
        old_median = float(np.median(old_times))
        report["old_latency_p99_ms"] = round(float(np.percentile(old_times, 99)), 4)
        report["old_latency_median_ms"] = round(old_median, 4)
        report["latency_median_ms"] = round(float(np.median(times)), 4)
        report["latency_ratio"] = round(float(np.median(times)) / old_median, 3) if old_median > 0 else None
    if old is not None and live:
        if list(old.features) != list(new.features):
            report["agreement"] = 0.0
            report["agreement_note"] = "feature lists differ"
        else:
            old_scores = old.score_batch(rows)
            same = (np.asarray(new_scores) > new.threshold) == (old_scores > old.threshold)
            report["agreement"] = round(float(np.mean(same)), 4)
    return report


def latency_failure(report: dict[str, Any], gates: dict[str, Any]) -> str | None:
    """Why the shadow run's latency fails the gates: over the absolute p99 ceiling, or more than
    ``max_latency_ratio`` times the current model's latency (median) measured in the same run."""
    p99 = report["latency_p99_ms"]
    ceiling = gates.get("max_p99_latency_ms")
    if ceiling is not None and p99 > float(ceiling):
        return f"p99 {p99} ms > gate {ceiling} ms"
    ratio, max_ratio = report.get("latency_ratio"), gates.get("max_latency_ratio")
    # Sub-millisecond differences are timer noise, not a regression (latency_slack_ms, default 0.5).
    slack = float(gates.get("latency_slack_ms", 0.5))
    median, old_median = report.get("latency_median_ms"), report.get("old_latency_median_ms")
    if ratio is not None and max_ratio is not None and ratio > float(max_ratio) and median - old_median > slack:
        return f"median {median} ms is {ratio}x the current model's {old_median} ms > gate {max_ratio}x (p99 {p99} ms)"
    return None


class DeployManager:
    """Handles deploy/rollback for one node. ``slot_for(name)`` finds the loaded ModelSlot of a
    model (None when no source uses it); ``live_rows(name, features)`` returns recent live feature
    rows (called in the command thread, under the agent's lock); ``publish_ack(ack)`` sends on cmd/ack."""

    def __init__(self, node_id: str, models_dir: Path, platform: PlatformConfig, *, publish_ack: Callable[[dict[str, Any]], None],
                 slot_for: Callable[[str], ModelSlot | None], live_rows: Callable[[str, list[str]], np.ndarray | None],
                 executor: ThreadPoolExecutor | None = None, ca_file: str | None = None,
                 loader: Callable[[Path, str, str], AnomalyModel] = load_model, keyring: Keyring | None = None) -> None:
        self.node_id = node_id
        self.models_dir = Path(models_dir)
        self.platform = platform
        self.publish_ack = publish_ack
        self.slot_for = slot_for
        self.live_rows = live_rows
        self.executor = executor or shared_executor()
        self.ca_file = ca_file
        self.loader = loader  # a fleet simulator shares sessions of identical verified files
        if keyring is None:
            keyring = Keyring.for_platform(platform.keyring_file, platform.model_public_key, platform.model_keys)
        self.keyring = keyring
        self._seen: deque[str] = deque(maxlen=SEEN_COMMANDS)
        self._previous: dict[str, AnomalyModel] = {}
        self._lock = threading.Lock()  # one deploy/rollback at a time per node
        self.busy = 0

    @staticmethod
    def handles(ctype: str) -> bool:
        return ctype in ("deploy", "rollback")

    def submit(self, cid: str, ctype: str, args: dict[str, Any]) -> None:
        """Take a command (from the agent's command thread): snapshot live windows now, work in the pool."""
        if cid in self._seen:
            log.info("node %s: command %s already taken; ignoring the redelivery", self.node_id, cid)
            return
        self._seen.append(cid)
        if ctype == "deploy":
            manifest = args.get("manifest") or {}
            meta = manifest.get("meta") or {}
            rows = None
            try:
                rows = self.live_rows(str(manifest.get("name")), list(meta.get("features") or []))
            except Exception:
                log.exception("node %s: collecting live windows failed", self.node_id)
            self.busy += 1
            jitter = float(args.get("jitter_s") or 0.0)
            if jitter > 0:
                # Spread a fleet's downloads without holding a pool worker while waiting.
                timer = threading.Timer(random.uniform(0.0, jitter), self.executor.submit,
                                        args=(self._guard, self.deploy, cid, args, rows))
                timer.daemon = True
                timer.start()
            else:
                self.executor.submit(self._guard, self.deploy, cid, args, rows)
        else:
            self.executor.submit(self._guard, self.rollback, cid, args)

    def _guard(self, fn: Callable[..., None], cid: str, *a: Any) -> None:
        try:
            fn(cid, *a)
        except Exception as exc:
            log.exception("node %s: command %s failed", self.node_id, cid)
            self._ack(cid, False, f"internal error: {type(exc).__name__}: {exc}", stage="failed", reason="internal_error", final=True)

    def _ack(self, cid: str, ok: bool, detail: str, *, stage: str, final: bool = False, **report: Any) -> None:
        ack = {"id": cid, "ok": ok, "detail": detail[:500], "report": {"stage": stage, "final": final, **report}}
        try:
            self.publish_ack(ack)
        except OSError as exc:
            log.warning("node %s: ack %s (%s) not sent: %s", self.node_id, cid, stage, exc)

    # -- deploy ------------------------------------------------------------------
    def download(self, url: str, expected_size: int) -> bytes:
        base = self.platform.url.rstrip("/")
        if not base:
            raise ArtifactRefused("download_failed", "no [platform] url configured")
        parts = urlsplit(url)
        target = base + parts.path  # only the path is taken: the node's secret goes to its own platform only
        auth = base64.b64encode(f"{self.node_id}:{self.platform.node_secret}".encode()).decode("ascii")
        req = urllib.request.Request(target, headers={"Authorization": f"Basic {auth}"})
        context = ssl.create_default_context(cafile=self.ca_file) if target.startswith("https") else None
        limit = min(MAX_ARTIFACT_BYTES, max(0, int(expected_size)) + 1)
        try:
            with urllib.request.urlopen(req, timeout=DOWNLOAD_TIMEOUT_S, context=context) as resp:
                return resp.read(limit)
        except urllib.error.HTTPError as exc:
            raise ArtifactRefused("download_failed", f"HTTP {exc.code} from {target}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ArtifactRefused("download_failed", f"{target}: {getattr(exc, 'reason', exc)}") from None

    def deploy(self, cid: str, args: dict[str, Any], rows: np.ndarray | None) -> None:
        try:
            with self._lock:
                self._deploy(cid, args, rows)
        finally:
            self.busy -= 1

    def _signed_by(self, cid: str, ctype: str, args: dict[str, Any]) -> str | None:
        """The key that signed this command, None when it is unsigned; ArtifactRefused when its
        signature does not hold (a forged or altered command is never half-trusted)."""
        if "auth" not in args:
            return None
        try:
            return self.keyring.verify_command(self.node_id, cid, ctype, args)
        except CommandRefused as exc:
            raise ArtifactRefused(exc.reason, exc.detail) from None

    def _deploy(self, cid: str, args: dict[str, Any], rows: np.ndarray | None) -> None:
        manifest = args.get("manifest") or {}
        label = f"{manifest.get('name')}@{manifest.get('version')}"
        downgrade: dict[str, Any] = {}
        try:
            signed_by = self._signed_by(cid, "deploy", args)
            named_key = str(args.get("key_id") or "")
            if named_key and self.keyring.is_revoked(named_key):  # refused before a byte is downloaded
                raise ArtifactRefused("revoked_key", f"{label} is signed with key {named_key}, which the platform revoked")
            older = downgrade_of(self.models_dir, str(manifest.get("name", "")), str(manifest.get("version", "")),
                                 str(manifest.get("sha256", "")))
            if older:
                if args.get("downgrade") is not True or signed_by is None:
                    raise ArtifactRefused("downgrade", f"{older}: only an explicit rollback signed by the platform may install it")
                downgrade = {"downgrade": True, "downgrade_from": read_pointer(self.models_dir, str(manifest["name"]), const.MODEL_CURRENT_POINTER)}
                log.warning("node %s: %s; accepted as an explicit rollback signed by key %s", self.node_id, older, signed_by)
            self._ack(cid, True, f"downloading {label}", stage="downloading")
            data = self.download(str(args.get("url", "")), int(manifest.get("size", 0)))
            self._ack(cid, True, f"verifying {label}", stage="verifying")
            key_id = verify_artifact(data, manifest, str(args.get("signature", "")), self.keyring, args.get("key_id"))
            folder = install_version(self.models_dir, manifest, data, str(args.get("signature", "")), key_id)
            name, version = str(manifest["name"]), str(manifest["version"])
            try:
                new = self.loader(self.models_dir, name, version)
            except ModelError as exc:
                shutil.rmtree(folder, ignore_errors=True)
                raise ArtifactRefused("load_failed", str(exc)) from None
        except ArtifactRefused as exc:
            log.warning("node %s: refused %s: %s", self.node_id, label, exc)
            self._ack(cid, False, f"refused {label}: {exc.detail}", stage="failed", reason=exc.reason, final=True)
            return
        self._ack(cid, True, f"shadow run of {label}", stage="shadow")
        slot = self.slot_for(name)
        old = slot.model if slot is not None else None
        gates = args.get("gates") or {}
        windows = int(args.get("shadow_windows") or 200)
        report = shadow_compare(new, old, rows, windows)
        if latency_failure(report, gates):
            # One slow measurement may be the host (another process, a GC pause), not the model:
            # measure again, and judge the second run.
            log.info("node %s: %s over its latency gate (%s); measuring again", self.node_id, label, latency_failure(report, gates))
            report = {**shadow_compare(new, old, rows, windows), "remeasured": True, "first_latency_p99_ms": report["latency_p99_ms"]}
        report.update(version=version, previous_version=old.version if old else read_pointer(self.models_dir, name, const.MODEL_CURRENT_POINTER),
                      signed_by=key_id, **downgrade)
        min_agree = gates.get("min_agreement")
        why = latency_failure(report, gates)
        if why:
            self._ack(cid, False, f"{label}: {why}; kept {report['previous_version']}",
                      stage="failed", reason="latency_gate", final=True, **report)
            return
        if min_agree is not None and report["agreement"] is not None and report["agreement"] < float(min_agree):
            self._ack(cid, False, f"{label}: agreement {report['agreement']} < gate {min_agree}; kept {report['previous_version']}",
                      stage="failed", reason="agreement_gate", final=True, **report)
            return
        switch_current(self.models_dir, name, version)
        if slot is not None and old is not None and old.version != version:
            self._previous[name] = slot.swap(new)
        report["loaded"] = slot is not None
        self._ack(cid, True, f"switched to {label}", stage="switched", final=True, **report)

    # -- rollback ------------------------------------------------------------------
    def rollback(self, cid: str, args: dict[str, Any]) -> None:
        with self._lock:
            self._rollback(cid, args)

    def _rollback(self, cid: str, args: dict[str, Any]) -> None:
        name, bad = str(args.get("name", "")), str(args.get("version", ""))
        try:
            # It puts an older version back: only on the platform's signed word (audited there).
            if self._signed_by(cid, "rollback", args) is None:
                raise ArtifactRefused("unsigned", f"rollback command {cid} carries no signature")
        except ArtifactRefused as exc:
            log.warning("node %s: rollback %s refused: %s", self.node_id, cid, exc)
            self._ack(cid, False, f"refused: {exc.detail}", stage="rolled_back", reason=exc.reason, final=True)
            return
        try:
            running = current_version(self.models_dir, name)
        except ModelError as exc:
            self._ack(cid, False, f"cannot roll back {name}: {exc}", stage="rolled_back", reason="no_model", final=True)
            return
        if running != bad:
            self._ack(cid, True, f"{name}@{bad} is not running ({running} is)", stage="rolled_back", final=True, version=running)
            return
        target = str(args.get("to_version") or "") or read_pointer(self.models_dir, name, PREVIOUS_POINTER)
        if not target or target == bad:
            self._ack(cid, False, f"no previous version of {name} to roll back to", stage="rolled_back",
                      reason="no_previous", final=True, version=running)
            return
        signer = _stored_key_id(self.models_dir / name / target)
        if signer and self.keyring.is_revoked(signer):
            self._ack(cid, False, f"{name}@{target} was signed with key {signer}, which the platform revoked", stage="rolled_back",
                      reason="revoked_key", final=True, version=running)
            return
        slot = self.slot_for(name)
        kept = self._previous.get(name)
        try:
            previous = kept if kept is not None and kept.version == target else self.loader(self.models_dir, name, target)
        except ModelError as exc:
            self._ack(cid, False, f"cannot load {name}@{target}: {exc}", stage="rolled_back", reason="load_failed",
                      final=True, version=running)
            return
        set_current(self.models_dir, name, target)
        _fsync_dir(self.models_dir / name)
        if slot is not None:
            slot.swap(previous)
        self._previous.pop(name, None)
        self._ack(cid, True, f"rolled back {name} {bad} -> {target}", stage="rolled_back", final=True, version=target)


def _stored_key_id(folder: Path) -> str:
    try:
        return (folder / SIGNING_KEY_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _agent_rows(agent: Any, name: str, features: list[str]) -> np.ndarray | None:
    """Recent live feature rows of the agent's assets that run model ``name`` (their snippet
    history: the last SNIPPET_HISTORY windows per asset)."""
    rows: list[np.ndarray] = []
    for rt in agent.assets.values():
        if rt.slot is None or rt.slot.model.name != name or not features:
            continue
        cols = [rt.history.get(f) for f in features]
        if any(c is None for c in cols):
            continue
        n = min(len(c) for c in cols)
        if n:
            rows.append(np.array([list(c)[-n:] for c in cols], dtype=np.float32).T)
    return np.vstack(rows) if rows else None


def _agent_slot(agent: Any, name: str) -> ModelSlot | None:
    for rt in agent.assets.values():
        if rt.slot is not None and rt.slot.model.name == name:
            return rt.slot
    return None


def attach_deploy(agent: Any) -> DeployManager | None:
    """The deploy handler of an ``Agent`` (None without a models_dir: nothing to deploy into)."""
    cfg = agent.cfg
    if cfg.models_dir is None:
        return None
    # A fleet shares one ModelSlot per model between its agents (fleet.py's model_cache): give
    # this agent its own slot (same loaded model) so a deploy switches this node only.
    own: dict[str, ModelSlot] = {}
    for rt in agent.assets.values():
        if rt.slot is not None:
            rt.slot = own.setdefault(rt.slot.model.name, ModelSlot(rt.slot.model))

    def publish_ack(ack: dict[str, Any]) -> None:
        agent.link.publish("cmd/ack", agent._encode(ack), qos=1)

    return DeployManager(agent.node_id, Path(cfg.models_dir), cfg.platform, publish_ack=publish_ack,
                         slot_for=lambda name: _agent_slot(agent, name),
                         live_rows=lambda name, features: _agent_rows(agent, name, features),
                         ca_file=str(cfg.broker.ca_file) if cfg.broker.ca_file else None, keyring=agent.keyring)


def agent_keyring(cfg: Any) -> Keyring:
    """The agent's keyring from its [platform] settings; ConfigError names the problem."""
    try:
        return Keyring.for_platform(cfg.platform.keyring_file, cfg.platform.model_public_key, cfg.platform.model_keys)
    except KeyringError as exc:
        raise ConfigError(f"[platform] model-signing keys: {exc}") from None
