"""The agent's configuration: typed dataclasses, loaded and validated from node.toml.

Everything is checked before the agent connects anywhere: a bad value raises
``ConfigError`` whose message names the file and the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from . import const, contract
from .contract import NODE_ID_PATTERN
from .field.specs import FieldConfig

NODE_ID_RE = re.compile(rf"^{NODE_ID_PATTERN}$")
AGGREGATES = ("mean", "max", "min", "last")


class ConfigError(ValueError):
    """The configuration is unusable; the message says where and why."""


@dataclass
class BrokerConfig:
    url: str = "mqtt://127.0.0.1:1883"
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = const.DEFAULT_KEEPALIVE_S
    protocol: str = "3.1.1"  # or "5"

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)


@dataclass
class FaultConfig:
    at_s: float  # sim seconds after start
    kind: str | None = None
    duration_s: float = 30.0
    magnitude: float = 1.0


@dataclass
class SourceConfig:
    plugin: str
    asset: str
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    sample_interval_s: float = const.DEFAULT_SAMPLE_INTERVAL_S
    fail_at_s: float | None = None  # operating age at which the simulated asset wears out
    age_s: float = 0.0  # its operating age when the agent starts
    renew_s: float | None = None  # a worn-out asset is replaced this long after it failed
    model: str | None = None  # anomaly model name in the models dir; None = default if present
    faults: list[FaultConfig] = field(default_factory=list)


@dataclass
class MetricFilter:
    deadband: float = 0.0  # absolute, in the metric's unit
    deadband_pct: float = const.DEFAULT_DEADBAND_REL  # relative to the last value sent
    window_s: float = const.DEFAULT_AGGREGATE_WINDOW_S
    aggregate: str = "mean"


@dataclass
class FilterConfig:
    aggregate_window_s: float = const.DEFAULT_AGGREGATE_WINDOW_S
    deadband_pct: float = const.DEFAULT_DEADBAND_REL
    max_silence_s: float = const.DEFAULT_MAX_SILENCE_S
    metrics: dict[str, MetricFilter] = field(default_factory=dict)
    points: dict[tuple[str, str], MetricFilter] = field(default_factory=dict)  # (asset, metric): from point maps

    def for_metric(self, name: str) -> MetricFilter:
        found = self.metrics.get(name)
        if found is not None:
            return found
        return MetricFilter(deadband_pct=self.deadband_pct, window_s=self.aggregate_window_s)

    def for_point(self, asset: str, name: str) -> MetricFilter:
        found = self.points.get((asset, name))
        return found if found is not None else self.for_metric(name)


@dataclass
class BufferConfig:
    max_bytes: int = const.DEFAULT_BUFFER_MAX_BYTES
    max_rows: int = const.DEFAULT_BUFFER_MAX_ROWS


@dataclass
class DetectConfig:
    z_threshold: float = const.EWMA_Z_THRESHOLD
    ewma_alpha: float = const.EWMA_ALPHA
    warmup: int = const.EWMA_WARMUP
    realert_s: float = const.ANOMALY_REALERT_S


@dataclass
class PlatformConfig:
    """Written by ``enroll``: the platform's URL, this node's HTTP secret, the model-signing key."""

    url: str = ""
    node_secret: str = ""
    model_public_key: str = ""  # PEM (Ed25519): the key pinned at enrollment (before keyrings, the only one)
    # The keyring (edge_node/agent/keyring.py): trusted keys by id, updated by signed keyring
    # commands. node.toml's default is keyring.json beside it; None keeps it in memory only.
    keyring_file: Path | None = None
    model_keys: dict[str, str] = field(default_factory=dict)  # key id -> raw public key (base64), for in-code nodes


@dataclass
class AgentConfig:
    node_id: str
    username: str | None = None
    password: str | None = None
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    sources: list[SourceConfig] = field(default_factory=list)
    filter: FilterConfig = field(default_factory=FilterConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    models_dir: Path | None = None
    state_dir: Path = Path("state")
    publish_interval_s: float = const.DEFAULT_PUBLISH_INTERVAL_S
    heartbeat_interval_s: float = const.DEFAULT_HEARTBEAT_INTERVAL_S
    speedup: float = 1.0
    payload_format: str = "json"  # or "msgpack"
    # "confirmed": keep each message until the platform confirms it stored it (end to end);
    # "broker": delete it on the broker's PUBACK (for a platform that does not confirm).
    delivery: str = "confirmed"
    confirm_timeout_s: float = contract.CONFIRM_TIMEOUT_S  # first wait before unconfirmed messages go again
    platform: PlatformConfig = field(default_factory=PlatformConfig)
    gateway: FieldConfig = field(default_factory=FieldConfig)  # real devices: [[devices]] point maps, [bacnet]


# -- loading -------------------------------------------------------------------
class _Reader:
    """Typed access to one TOML table, with errors that name the key."""

    def __init__(self, table: dict[str, Any], where: str) -> None:
        self.table = table
        self.where = where
        self.used: set[str] = set()

    def fail(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"{self.where}{key}: {why}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., *, required: bool = False) -> Any:
        self.used.add(key)
        if key not in self.table:
            if required or default is ...:
                raise self.fail(key, "is required")
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(key, f"must be {names}, got {type(value).__name__} {value!r}")
        return value

    def positive(self, key: str, default: float, *, allow_zero: bool = False) -> float:
        value = self.get(key, float, default)
        if value < 0 or (value == 0 and not allow_zero):
            raise self.fail(key, f"must be {'>= 0' if allow_zero else '> 0'}, got {value}")
        return value

    def table_of(self, key: str) -> dict[str, Any]:
        return self.get(key, dict, {})

    def check_unknown(self) -> None:
        extra = sorted(set(self.table) - self.used)
        if extra:
            raise ConfigError(f"{self.where}{extra[0]}: unknown key (check its spelling)")


def _path(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p)


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate node.toml; raise ConfigError naming the problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc.reason}") from None
    return parse_config(raw, base_dir=path.resolve().parent, name=str(path), text=path.read_text(encoding="utf-8"))


def parse_config(raw: dict[str, Any], base_dir: Path, name: str = "config", text: str | None = None) -> AgentConfig:
    """``text``: the file's source, so point-map errors can name their line."""
    top = _Reader(raw, f"{name}: ")
    node = _Reader(top.table_of("node"), f"{name}: [node].")
    node_id = node.get("id", str, required=True)
    if not NODE_ID_RE.match(node_id):
        raise node.fail("id", f"{node_id!r} is not a valid node id (letters, digits, _ . -; at most 64)")
    username = node.get("username", str, None)
    password = node.get("password", str, None)
    password_file = node.get("password_file", str, None)
    if password_file is not None:
        pf = _path(base_dir, password_file)
        try:
            password = pf.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise node.fail("password_file", f"cannot read {pf}: {exc.strerror}") from None
    cfg = AgentConfig(node_id=node_id, username=username, password=password)
    cfg.state_dir = _path(base_dir, node.get("state_dir", str, "state"))
    cfg.models_dir = _path(base_dir, node.get("models_dir", str, None))
    cfg.publish_interval_s = node.positive("publish_interval_s", const.DEFAULT_PUBLISH_INTERVAL_S)
    cfg.heartbeat_interval_s = node.positive("heartbeat_interval_s", const.DEFAULT_HEARTBEAT_INTERVAL_S)
    cfg.speedup = node.positive("speedup", 1.0)
    cfg.payload_format = node.get("format", str, "json")
    if cfg.payload_format not in ("json", "msgpack"):
        raise node.fail("format", f"must be 'json' or 'msgpack', got {cfg.payload_format!r}")
    cfg.delivery = node.get("delivery", str, "confirmed")
    if cfg.delivery not in const.DELIVERY_MODES:
        raise node.fail("delivery", f"must be one of {', '.join(const.DELIVERY_MODES)}, got {cfg.delivery!r}")
    cfg.confirm_timeout_s = node.positive("confirm_timeout_s", contract.CONFIRM_TIMEOUT_S)
    node.check_unknown()

    b = _Reader(top.table_of("broker"), f"{name}: [broker].")
    url = b.get("url", str, "mqtt://127.0.0.1:1883")
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise b.fail("url", f"{url!r} must look like mqtt://host:port or mqtts://host:port")
    try:
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise b.fail("url", f"{url!r} has an invalid port") from None
    if parts.username and cfg.username is None:
        cfg.username = unquote(parts.username)
        cfg.password = unquote(parts.password) if parts.password else cfg.password
    broker = BrokerConfig(url=url)
    broker.ca_file = _path(base_dir, b.get("ca_file", str, None))
    broker.cert_file = _path(base_dir, b.get("cert_file", str, None))
    broker.key_file = _path(base_dir, b.get("key_file", str, None))
    broker.keepalive_s = int(b.positive("keepalive_s", const.DEFAULT_KEEPALIVE_S))
    broker.protocol = str(b.get("protocol", (str, int, float), "3.1.1"))
    if broker.protocol not in ("3.1.1", "5", "5.0"):
        raise b.fail("protocol", f"must be '3.1.1' or '5', got {broker.protocol!r}")
    for key in ("ca_file", "cert_file", "key_file"):
        p = getattr(broker, key)
        if p is not None and not p.is_file():
            raise b.fail(key, f"{p} does not exist or is not a file")
    if broker.cert_file is not None and not broker.tls:
        raise b.fail("cert_file", "a client certificate needs an mqtts:// url")
    b.check_unknown()
    cfg.broker = broker

    pl = _Reader(top.table_of("platform"), f"{name}: [platform].")
    cfg.platform = PlatformConfig(url=pl.get("url", str, ""), node_secret=pl.get("node_secret", str, ""), model_public_key=pl.get("model_public_key", str, ""),
                                  keyring_file=_path(base_dir, pl.get("keyring_file", str, const.KEYRING_FILE)))
    pl.check_unknown()

    buf = _Reader(top.table_of("buffer"), f"{name}: [buffer].")
    cfg.buffer = BufferConfig(
        max_bytes=int(buf.positive("max_bytes", const.DEFAULT_BUFFER_MAX_BYTES)),
        max_rows=int(buf.positive("max_rows", const.DEFAULT_BUFFER_MAX_ROWS)),
    )
    buf.check_unknown()

    f = _Reader(top.table_of("filter"), f"{name}: [filter].")
    flt = FilterConfig(
        aggregate_window_s=f.positive("aggregate_window_s", const.DEFAULT_AGGREGATE_WINDOW_S, allow_zero=True),
        deadband_pct=f.positive("deadband_pct", const.DEFAULT_DEADBAND_REL, allow_zero=True),
        max_silence_s=f.positive("max_silence_s", const.DEFAULT_MAX_SILENCE_S),
    )
    for metric, table in f.table_of("metrics").items():
        if not isinstance(table, dict):
            raise f.fail(f"metrics.{metric}", "must be a table")
        m = _Reader(table, f"{name}: [filter.metrics.{metric}].")
        mf = MetricFilter(
            deadband=m.positive("deadband", 0.0, allow_zero=True),
            deadband_pct=m.positive("deadband_pct", flt.deadband_pct, allow_zero=True),
            window_s=m.positive("window_s", flt.aggregate_window_s, allow_zero=True),
            aggregate=m.get("aggregate", str, "mean"),
        )
        if mf.aggregate not in AGGREGATES:
            raise m.fail("aggregate", f"must be one of {', '.join(AGGREGATES)}, got {mf.aggregate!r}")
        m.check_unknown()
        flt.metrics[metric] = mf
    f.check_unknown()
    cfg.filter = flt

    d = _Reader(top.table_of("detect"), f"{name}: [detect].")
    cfg.detect = DetectConfig(
        z_threshold=d.positive("z_threshold", const.EWMA_Z_THRESHOLD),
        ewma_alpha=d.positive("ewma_alpha", const.EWMA_ALPHA),
        warmup=int(d.positive("warmup", const.EWMA_WARMUP, allow_zero=True)),
        realert_s=d.positive("realert_s", const.ANOMALY_REALERT_S, allow_zero=True),
    )
    if not 0 < cfg.detect.ewma_alpha < 1:
        raise d.fail("ewma_alpha", "must be between 0 and 1")
    d.check_unknown()

    top.used.update(("devices", "bacnet"))
    if "devices" in raw or "bacnet" in raw:
        _parse_field(cfg, raw, text, base_dir, name)
    sources = top.get("sources", list, [])
    if not sources and not cfg.gateway.devices:
        raise ConfigError(f"{name}: [[sources]] or [[devices]]: at least one source or device is required")
    seen: set[str] = set(cfg.gateway.assets)
    for i, table in enumerate(sources):
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: sources[{i}]: must be a table ([[sources]])")
        s = _Reader(table, f"{name}: sources[{i}].")
        sc = SourceConfig(plugin=s.get("plugin", str, required=True), asset=s.get("asset", str, required=True))
        if sc.asset in seen:
            raise s.fail("asset", f"asset id {sc.asset!r} is used twice (by another source or by a device's points)")
        seen.add(sc.asset)
        sc.seed = s.get("seed", int, 0)
        sc.params = dict(s.table_of("params"))
        if isinstance(sc.params.get("path"), str) and sc.params["path"]:
            sc.params["path"] = str(_path(base_dir, sc.params["path"]))
        sc.sample_interval_s = s.positive("sample_interval_s", const.DEFAULT_SAMPLE_INTERVAL_S)
        fail_at = s.get("fail_at_s", float, None)
        if fail_at is not None and fail_at <= 0:
            raise s.fail("fail_at_s", f"must be > 0, got {fail_at}")
        sc.fail_at_s = fail_at
        sc.age_s = s.positive("age_s", 0.0, allow_zero=True)
        renew = s.get("renew_s", float, None)
        if renew is not None and renew <= 0:
            raise s.fail("renew_s", f"must be > 0, got {renew}")
        sc.renew_s = renew
        sc.model = s.get("model", str, None)
        for j, ft in enumerate(s.get("faults", list, [])):
            if not isinstance(ft, dict):
                raise s.fail(f"faults[{j}]", "must be a table")
            fr = _Reader(ft, f"{name}: sources[{i}].faults[{j}].")
            sc.faults.append(FaultConfig(
                at_s=fr.positive("at_s", 0.0, allow_zero=True), kind=fr.get("kind", str, None),
                duration_s=fr.positive("duration_s", 30.0), magnitude=fr.positive("magnitude", 1.0),
            ))
            fr.check_unknown()
        s.check_unknown()
        cfg.sources.append(sc)
    top.check_unknown()
    return cfg


def _parse_field(cfg: AgentConfig, raw: dict[str, Any], text: str | None, base_dir: Path, name: str) -> None:
    """Field devices (edge_node/agent/field): point maps become one source per asset they feed
    and per-point filter settings."""
    from .field.mapfile import parse_field
    from .field.reader import MapError

    try:
        cfg.gateway = parse_field(raw, text, base_dir, name)
    except MapError as exc:
        raise ConfigError(str(exc)) from None
    if cfg.gateway.devices and cfg.speedup != 1.0:
        raise ConfigError(f"{name}: [node].speedup: real devices run in real time; remove speedup (got {cfg.speedup})")
    for asset in cfg.gateway.assets.values():
        cfg.sources.append(SourceConfig(plugin=const.FIELD_PLUGIN, asset=asset.asset, model=asset.model,
                                        sample_interval_s=asset.sample_interval_s))
    for device in cfg.gateway.devices:
        for p in device.points:
            if (p.deadband, p.deadband_pct, p.window_s, p.aggregate) == (None, None, None, None):
                continue
            base = cfg.filter.for_metric(p.metric)
            cfg.filter.points[(p.asset, p.metric)] = MetricFilter(
                deadband=base.deadband if p.deadband is None else p.deadband,
                deadband_pct=base.deadband_pct if p.deadband_pct is None else p.deadband_pct,
                window_s=base.window_s if p.window_s is None else p.window_s,
                aggregate=base.aggregate if p.aggregate is None else p.aggregate,
            )
