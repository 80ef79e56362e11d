"""Command line: ``python -m edge_node.agent run --config node.toml`` (or ``check``, ``enroll``, ``discover``)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from . import const
from .agent import build_agent
from .config import ConfigError, load_config
from .models import ModelError

log = logging.getLogger("edge_node.agent")


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["enroll"]:  # enroll --url URL --token TOKEN [--config node.toml]: see enroll.py
        from .enroll import main as enroll_main

        return enroll_main(args_in[1:])
    if args_in[:1] == ["discover"]:  # discover --modbus HOST --scan R | --opcua URL | --bacnet: see field/discover.py
        from .field.discover import main as discover_main

        return discover_main(args_in[1:])
    parser = argparse.ArgumentParser(prog="python -m edge_node.agent", description="AIoT edge agent")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "run the agent"), ("check", "validate the config and models, then exit")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", required=True, help="path to node.toml")
        p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub.add_parser("enroll", help="exchange a one-time token for this node's identity (see enroll --help)", add_help=False)
    sub.add_parser("discover", help="look at a Modbus, OPC UA or BACnet device and print a point map (see discover --help)",
                   add_help=False)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config)
        # Sources, models, state dir and buffer are all built here, before any connection.
        agent = build_agent(cfg)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return const.EXIT_CONFIG_ERROR
    except ModelError as exc:
        print(f"model error: {exc}", file=sys.stderr)
        return const.EXIT_MODEL_ERROR
    if args.command == "check":
        devices = cfg.gateway.devices
        fed = f", {len(devices)} device(s) with {sum(len(d.points) for d in devices)} point(s)" if devices else ""
        print(f"ok: node {cfg.node_id}, {len(cfg.sources)} source(s){fed}, models {agent.model_versions() or 'none'}")
        agent.outbox.close()
        return const.EXIT_OK
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()
        agent.wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("node %s: %d source(s), broker %s, models %s, buffer %d message(s) waiting",
             cfg.node_id, len(cfg.sources), cfg.broker.url, agent.model_versions() or "none", agent.outbox.depth)
    agent.run(stop)
    return const.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
