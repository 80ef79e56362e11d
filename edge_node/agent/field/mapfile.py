"""Parse and validate the field devices of node.toml: ``[[devices]]`` with their points (inline
``[[devices.points]]`` or a ``map = "maps/meter.toml"`` file of ``[[points]]``) and the
gateway's own ``[bacnet]`` identity.

Every error names the file and line: ``node.toml:42: devices[1].points[3].type: must be one
of int16, ...``. Nothing here imports a protocol library: a map is checked the same way on a
gateway that has not installed the protocol's extra (the runtime says which one is missing).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from ..asset_types import ASSET_TYPES
from . import pointmap
from .reader import MapError, Reader
from .specs import (
    PROTOCOLS,
    BacnetLocal,
    BacnetOptions,
    DeviceSpec,
    FieldAsset,
    FieldConfig,
    ModbusOptions,
    OpcuaOptions,
)
from .tomllines import LineIndex

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
OPCUA_SECURITY = ("None", "Basic256Sha256")
OPCUA_MODES = ("Sign", "SignAndEncrypt")
PARITIES = ("N", "E", "O")
MAP_KEYS = ("points", "byte_order", "word_order", "asset_type", "poll_interval_s", "description", "detect")


def parse_field(raw: dict[str, Any], text: str | None, base_dir: Path, name: str) -> FieldConfig:
    """The ``devices`` and ``bacnet`` parts of a parsed node.toml (``text``: its source, for
    line numbers). Raises MapError naming the file and line."""
    lines = LineIndex(text or "")
    cfg = FieldConfig()
    if "bacnet" in raw:
        b = Reader(raw["bacnet"], ("bacnet",), name, lines)
        if not isinstance(raw["bacnet"], dict):
            raise b.fail(None, "must be a table ([bacnet])")
        cfg.bacnet = BacnetLocal(
            address=b.get("address", str, BacnetLocal.address),
            device_instance=b.integer("device_instance", BacnetLocal.device_instance, 0, 4194302),
            name=b.get("name", str, BacnetLocal.name),
        )
        b.check_unknown()
    devices = raw.get("devices", [])
    top = Reader(raw, (), name, lines)
    if not isinstance(devices, list):
        raise top.fail("devices", "must be an array of tables ([[devices]])")
    names: set[str] = set()
    seen_points: dict[tuple[str, str], str] = {}
    for i, table in enumerate(devices):
        r = Reader(table, ("devices", i), name, lines)
        if not isinstance(table, dict):
            raise r.fail(None, "must be a table ([[devices]])")
        device = _parse_device(r, base_dir, cfg)
        if device.name in names:
            raise r.fail("name", f"device name {device.name!r} is used twice")
        names.add(device.name)
        for point in device.points:
            key = (point.asset, point.metric)
            if key in seen_points:
                raise MapError(f"{point.where}: {point.label} is already read by {seen_points[key]}")
            seen_points[key] = point.where
        cfg.devices.append(device)
    return cfg


def _parse_device(r: Reader, base_dir: Path, cfg: FieldConfig) -> DeviceSpec:
    dev_name = r.get("name", str, required=True)
    if not NAME_RE.match(dev_name):
        raise r.fail("name", f"{dev_name!r} is not a valid name (letters, digits, _ . -; at most 64)")
    protocol = r.choice("protocol", PROTOCOLS, required=True)
    asset = r.get("asset", str, None)
    asset_type = r.get("asset_type", str, None)
    model = r.get("model", str, None)
    detect = r.get("detect", list, None)
    poll = r.positive("poll_interval_s", 1.0)
    timeout = r.positive("timeout_s", 2.0)
    defaults: dict[str, Any] = {}
    points_raw: list[tuple[Reader, dict]] = []
    map_path = r.get("map", str, None)
    if map_path is not None:
        mp = Path(os.path.expanduser(map_path))
        mp = mp if mp.is_absolute() else base_dir / mp
        try:
            text = mp.read_text(encoding="utf-8")
            data = tomllib.loads(text)
        except OSError as exc:
            raise r.fail("map", f"cannot read {mp}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise r.fail("map", f"{mp} is not valid TOML: {exc}") from None
        m = Reader(data, (), str(mp), LineIndex(text))
        for key in MAP_KEYS:
            if key != "points" and key in data:
                defaults[key] = data[key]
        m.used.update(MAP_KEYS)
        m.check_unknown()
        pts = data.get("points", [])
        if not isinstance(pts, list):
            raise m.fail("points", "must be an array of tables ([[points]])")
        points_raw += [(Reader(t, ("points", j), str(mp), m.lines), t) for j, t in enumerate(pts)]
        asset_type = asset_type or defaults.get("asset_type")
        detect = detect if detect is not None else defaults.get("detect")
        if "poll_interval_s" in defaults and "poll_interval_s" not in r.table:
            poll = m.positive("poll_interval_s", poll)
    inline = r.get("points", list, [])
    points_raw += [(Reader(t, (*r.path, "points", j), r.file, r.lines), t) for j, t in enumerate(inline)]
    if not points_raw:
        raise r.fail("points", "a device needs at least one point ([[devices.points]] or a map file with [[points]])")
    options = _parse_options(r, protocol, base_dir, defaults)
    device = DeviceSpec(name=dev_name, protocol=protocol, points=[], options=options, poll_interval_s=poll,
                        timeout_s=timeout, where=r.where())
    for pr, table in points_raw:
        if not isinstance(table, dict):
            raise pr.fail(None, "must be a table")
        device.points.append(pointmap.parse_point(pr, device, asset, asset_type, defaults))
    for point in device.points:
        fa = cfg.assets.get(point.asset)
        if fa is None:
            fa = cfg.assets[point.asset] = FieldAsset(point.asset, asset_type=asset_type or "field", model=model)
            if detect is not None:
                if not all(isinstance(x, str) for x in detect):
                    raise r.fail("detect", "must be a list of metric names")
                fa.detect = list(detect)
            elif asset_type in ASSET_TYPES:
                from ..const import DETECT_METRICS

                fa.detect = list(DETECT_METRICS.get(asset_type, []))
        elif asset_type and fa.asset_type not in ("field", asset_type):
            raise r.fail("asset_type", f"asset {point.asset} is already of type {fa.asset_type!r}")
        fa.sample_interval_s = min(fa.sample_interval_s, point.poll_interval_s)
    r.check_unknown()
    return device


def _parse_options(r: Reader, protocol: str, base_dir: Path, defaults: dict[str, Any]) -> Any:
    if protocol == "modbus":
        host = r.get("host", str, None)
        serial = r.get("serial", str, None)
        if (host is None) == (serial is None):
            raise r.fail("host", "a Modbus device needs either host (TCP) or serial (RTU), not both")
        o = ModbusOptions(host=host, serial=serial)
        o.port = r.integer("port", 502, 1, 65535)
        o.unit_id = r.integer("unit_id", 1, 0, 255)
        o.baudrate = r.integer("baudrate", 9600, 300, 4_000_000)
        o.parity = r.choice("parity", PARITIES, default="N")
        o.stopbits = r.integer("stopbits", 1, 1, 2)
        o.bytesize = r.integer("bytesize", 8, 5, 8)
        o.max_block = r.integer("max_block", 125, 1, 125)
        o.max_gap = r.integer("max_gap", 0, 0, 100)
        if serial is None:
            for key in ("baudrate", "parity", "stopbits", "bytesize"):
                if key in r.table:
                    raise r.fail(key, "is a serial (RTU) setting; this device uses host (TCP)")
        for key in ("byte_order", "word_order"):
            value = r.choice(key, ("big", "little"), default=None)
            if value is not None:
                defaults[key] = value
        return o
    if protocol == "opcua":
        o = OpcuaOptions(endpoint=r.get("endpoint", str, required=True))
        if not o.endpoint.startswith("opc.tcp://"):
            raise r.fail("endpoint", f"{o.endpoint!r} must look like opc.tcp://host:4840/path")
        o.security = r.choice("security", OPCUA_SECURITY, default="None")
        o.mode = r.choice("mode", OPCUA_MODES, default="SignAndEncrypt")
        for key in ("certificate", "private_key", "server_certificate"):
            value = r.get(key, str, None)
            if value is not None:
                p = Path(os.path.expanduser(value))
                p = p if p.is_absolute() else base_dir / p
                if not p.is_file():
                    raise r.fail(key, f"{p} does not exist or is not a file")
                setattr(o, key, p)
        if o.security != "None" and (o.certificate is None or o.private_key is None):
            raise r.fail("security", f"{o.security} needs certificate and private_key (this gateway's own)")
        o.username = r.get("username", str, None)
        o.password = r.get("password", str, None)
        password_file = r.get("password_file", str, None)
        if password_file is not None:
            pf = Path(os.path.expanduser(password_file))
            pf = pf if pf.is_absolute() else base_dir / pf
            try:
                o.password = pf.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise r.fail("password_file", f"cannot read {pf}: {exc.strerror}") from None
        if o.password is not None and o.username is None:
            raise r.fail("password", "a password needs a username")
        o.subscribe = r.choice("subscribe", ("auto", "never"), default="auto")
        interval = r.get("publishing_interval_ms", float, None)
        if interval is not None and interval <= 0:
            raise r.fail("publishing_interval_ms", f"must be > 0, got {interval}")
        o.publishing_interval_ms = interval
        o.queue_size = r.integer("queue_size", 10, 1, 10_000)
        o.timestamps = r.choice("timestamps", ("source", "gateway"), default="source")
        return o
    o = BacnetOptions(address=r.get("address", str, None))
    o.device_instance = r.integer("device_instance", None, 0, 4194302)
    if o.address is None and o.device_instance is None:
        raise r.fail("address", "a BACnet device needs address or device_instance (found by Who-Is)")
    o.cov = r.get("cov", bool, True)
    o.cov_lifetime_s = r.integer("cov_lifetime_s", 300, 60, 86400)
    o.max_rpm_points = r.integer("max_rpm_points", 25, 1, 200)
    return o
