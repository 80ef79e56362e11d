"""Hook the field devices into an agent: check the protocol extras are installed, build the
gateway runtime (started and stopped with the agent)."""

from __future__ import annotations

import threading

from ..config import AgentConfig, ConfigError


def attach_field(cfg: AgentConfig, t0: float, wake: threading.Event | None):
    """The FieldGateway of ``cfg``'s [[devices]], or None without any. ConfigError naming the
    device and the requirements file when a protocol's library is missing."""
    if not cfg.gateway.devices:
        return None
    from .drivers import MissingExtra, require

    for device in cfg.gateway.devices:
        try:
            require(device.protocol)
        except MissingExtra as exc:
            raise ConfigError(f"{device.where}: device {device.name}: {exc}") from None
    from .runtime import FieldGateway

    return FieldGateway(cfg.gateway, t0, wake)
