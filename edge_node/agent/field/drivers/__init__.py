"""Protocol drivers: one class per protocol, each importing its library only when used.

A driver's ``run()`` connects, then reads (polls on the device's schedules, or receives
subscription notifications) until the device fails, and raises: ``DeviceDown`` with a reason,
or whatever the library raised (the runtime records it and reconnects after a backoff).
Values go to ``sink.values``; points without a usable value to ``sink.bad``.
"""

from __future__ import annotations

import importlib
import logging
import math
from typing import Any

from ..specs import EXTRAS, DeviceSpec, FieldConfig

# protocol -> (module of the driver, library the driver needs)
DRIVERS = {
    "modbus": ("modbus", "pymodbus"),
    "opcua": ("opcua", "asyncua"),
    "bacnet": ("bacnet", "bacpypes3"),
}


def quiet_library_logs(name: str, level: int = logging.WARNING) -> None:
    """A protocol library logs every frame at INFO (asyncua formats whole publish responses)
    and pymodbus every failed request as an error: the driver reports what matters once, per
    device. Applies unless the logger was set explicitly or the agent runs at DEBUG."""
    logger = logging.getLogger(name)
    if logger.level == logging.NOTSET and logging.getLogger().level > logging.DEBUG:
        logger.setLevel(level)


def next_slot(due: float, interval: float, now: float) -> float:
    """The next poll time on the schedule's own grid (absolute deadlines: a poll that ran late
    does not shift the schedule, so a 1 s schedule reads exactly once a second on average).
    A slot whose time has passed by less than one interval runs at once (a loop that was busy
    for a moment loses no reading); slots a whole interval or more in the past (a device slower
    than its interval) are skipped, not caught up in a burst."""
    due += interval
    if due <= now - interval:
        due += math.floor((now - due) / interval) * interval
    return due


class DeviceDown(Exception):
    """The device cannot be reached or stopped answering (the message says how)."""


class MissingExtra(ImportError):
    pass


def require(protocol: str) -> None:
    """Raise MissingExtra naming the requirements file when the protocol's library is absent."""
    library = DRIVERS[protocol][1]
    try:
        importlib.import_module(library)
    except ImportError as exc:
        raise MissingExtra(
            f"{protocol} devices need the {library} package, which is not installed: "
            f"pip install -r edge_node/agent/{EXTRAS[protocol]} ({exc})"
        ) from None


def make_driver(spec: DeviceSpec, sink: Any, health: Any, shared: dict[str, Any], cfg: FieldConfig) -> Any:
    module = importlib.import_module(f"{__name__}.{DRIVERS[spec.protocol][0]}")
    return module.Driver(spec, sink, health, shared, cfg)
