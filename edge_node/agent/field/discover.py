"""``python -m edge_node.agent discover``: look at a device and print a point-map skeleton.

    discover --modbus HOST[:PORT] --scan 0-199 [--unit 1] [--table holding|input]
    discover --opcua opc.tcp://host:4840/path [--user U --password W]
    discover --bacnet [--address 192.168.1.20] [--local 0.0.0.0:47808] [--wait 3]

The output is TOML to paste into node.toml: a ``[[devices]]`` table and one
``[[devices.points]]`` per register / variable / object found, with what was read now as a
comment. It is a skeleton: name the metrics, pick the types (two Modbus registers holding a
float32 are one point), units and scales, set the asset, then ``check`` the config.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FoundPoint:
    metric: str
    keys: dict[str, Any]  # point-map keys (register, type, node, object, unit...)
    comment: str = ""


@dataclass
class FoundDevice:
    name: str
    keys: dict[str, Any]
    points: list[FoundPoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def slug(text: str, fallback: str) -> str:
    """A metric key from a name: "Supply Air Temp" -> "supply_air_temp"."""
    out = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()[:64]
    return out if out and out[0].isalnum() else fallback


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def render(devices: list[FoundDevice], command: str) -> str:
    lines = [f"# python -m edge_node.agent discover {command}", f"# at {time.strftime('%Y-%m-%d %H:%M:%S %z')}", ""]
    for d in devices:
        lines += [f"# {note}" for note in d.notes]
        lines.append("[[devices]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in d.keys.items()]
        lines.append("")
        used: set[str] = set()
        for p in d.points:
            metric = p.metric
            n = 2
            while metric in used:
                metric, n = f"{p.metric}_{n}", n + 1
            used.add(metric)
            lines.append("[[devices.points]]")
            lines.append(f"metric = {toml_value(metric)}")
            keys = list(p.keys.items())
            for i, (k, v) in enumerate(keys):
                text = f"{k} = {toml_value(v)}"
                if p.comment and i == len(keys) - 1:
                    text = f"{text:<40} # {p.comment}"
                lines.append(text)
            lines.append("")
    return "\n".join(lines)


def parse_range(text: str) -> tuple[int, int]:
    m = re.match(r"^(\d+)\s*-\s*(\d+)$", text.strip())
    if not m or int(m.group(1)) > int(m.group(2)) or int(m.group(2)) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: give a register range like 0-199 (0-based, at most 65535)")
    return int(m.group(1)), int(m.group(2))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_node.agent discover", description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--modbus", metavar="HOST[:PORT]", help="a Modbus TCP device")
    what.add_argument("--opcua", metavar="URL", help="an OPC UA server (opc.tcp://...)")
    what.add_argument("--bacnet", action="store_true", help="BACnet/IP devices (Who-Is)")
    parser.add_argument("--scan", type=parse_range, default=(0, 99), help="Modbus registers to try, e.g. 0-199")
    parser.add_argument("--unit", type=int, default=1, help="Modbus unit id")
    parser.add_argument("--table", choices=("holding", "input"), default="holding")
    parser.add_argument("--user", help="OPC UA user name")
    parser.add_argument("--password", help="OPC UA password")
    parser.add_argument("--max-variables", type=int, default=500)
    parser.add_argument("--address", help="BACnet: ask this address only (Who-Is sent to it)")
    parser.add_argument("--local", default="0.0.0.0:47808", help="BACnet: this gateway's address to bind")
    parser.add_argument("--wait", type=float, default=3.0, help="BACnet: seconds to wait for I-Am answers")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    protocol = "modbus" if args.modbus else "opcua" if args.opcua else "bacnet"
    logging.basicConfig(level=logging.WARNING, format="discover: %(name)s: %(message)s")
    from .drivers import MissingExtra, require

    try:
        require(protocol)
    except MissingExtra as exc:
        print(f"discover: {exc}", file=sys.stderr)
        return 2
    try:
        if protocol == "modbus":
            from .discover_modbus import discover_modbus

            devices = asyncio.run(discover_modbus(args.modbus, args.scan, args.unit, args.table, args.timeout))
        elif protocol == "opcua":
            from .discover_opcua import discover_opcua

            devices = asyncio.run(discover_opcua(args.opcua, args.user, args.password, args.max_variables, args.timeout))
        else:
            from .discover_bacnet import discover_bacnet

            devices = asyncio.run(discover_bacnet(args.local, args.address, args.wait, args.timeout))
    except DiscoverError as exc:
        print(f"discover: {exc}", file=sys.stderr)
        return 1
    print(render(devices, " ".join(argv)))
    found = sum(len(d.points) for d in devices)
    print(f"discover: {len(devices)} device(s), {found} point(s)", file=sys.stderr)
    return 0 if devices else 1


class DiscoverError(Exception):
    """Nothing could be asked (no connection, no answer); the message says what failed."""
