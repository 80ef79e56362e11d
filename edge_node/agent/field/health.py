"""Device and point health: what the nodes page shows, and the device-status events.

A device is ``connecting`` until its first good exchange, then ``ok`` or ``down``; a point is
good or bad (with the reason: a Modbus exception, an OPC UA status, a BACnet error, a value
out of range). Only changes make events: a device going down (warning) or coming back (info),
points turning bad or good again (one event per asset and change, not per poll), so a meter
that stays unplugged for a week costs one event, not 600,000.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .specs import DeviceSpec, PointSpec

EVENT_KIND = "device_status"
MAX_BAD_POINTS_SHOWN = 20
MAX_QUEUED_EVENTS = 10_000


@dataclass
class DeviceHealth:
    spec: DeviceSpec
    state: str = "connecting"
    since: float = field(default_factory=time.time)
    last_error: str = ""
    last_ok: float | None = None
    mode: str = ""  # "poll", "subscription", "subscription+poll", "cov+poll"
    reads: int = 0  # successful exchanges (requests answered, notifications received)
    failures: int = 0  # connections lost or refused
    values: int = 0
    dropped: int = 0  # values the agent had no room for
    bad: dict[str, str] = field(default_factory=dict)  # point label -> reason

    def snapshot(self) -> dict[str, Any]:
        spec = self.spec
        bad = sorted(self.bad.items())
        return {
            "device": spec.name, "protocol": spec.protocol, "endpoint": spec.endpoint, "state": self.state,
            "since": round(self.since, 3), "last_ok": round(self.last_ok, 3) if self.last_ok else None,
            "mode": self.mode, "points": len(spec.points), "bad_points": len(bad),
            "bad": [{"point": p, "reason": r} for p, r in bad[:MAX_BAD_POINTS_SHOWN]],
            "reads": self.reads, "failures": self.failures, "values": self.values,
            "dropped": self.dropped, "last_error": self.last_error,
        }


class HealthBoard:
    """Written by the gateway's event-loop thread; read by the agent's thread (status, events)."""

    def __init__(self, devices: list[DeviceSpec]) -> None:
        self.devices = {d.name: DeviceHealth(d) for d in devices}
        self._events: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self.events_dropped = 0

    # -- device ----------------------------------------------------------------------
    def device_ok(self, name: str, mode: str | None = None) -> None:
        h = self.devices[name]
        now = time.time()
        h.last_ok = now
        if mode is not None:
            h.mode = mode
        if h.state == "ok":
            return
        was_down = h.state == "down"
        down_for = now - h.since
        h.state, h.since = "ok", now
        if was_down:
            self._event(h, now, "info", f"{self._label(h)} is back after {_duration(down_for)}", "ok")

    def device_down(self, name: str, reason: str) -> None:
        h = self.devices[name]
        now = time.time()
        h.failures += 1
        h.last_error = reason
        if h.state == "down":
            return
        h.state, h.since = "down", now
        self._event(h, now, "warning", f"{self._label(h)} is unreachable: {reason}", "down")

    # -- points ----------------------------------------------------------------------
    def points_bad(self, name: str, failures: list[tuple[PointSpec, str]], ts: float) -> None:
        """Points that gave no usable value this time, with the reason; an event for the ones
        that were good until now."""
        h = self.devices[name]
        fresh: list[tuple[PointSpec, str]] = []
        for point, reason in failures:
            if point.label not in h.bad:
                fresh.append((point, reason))
            h.bad[point.label] = reason
        for asset, items in _by_asset(fresh).items():
            listed = "; ".join(f"{p.metric}: {r}" for p, r in items[:5])
            more = f" (and {len(items) - 5} more)" if len(items) > 5 else ""
            self._event(h, ts, "warning", f"{h.spec.name}: {len(items)} point(s) of {asset} give no usable value: {listed}{more}",
                        "bad_points", asset=asset, points=[{"metric": p.metric, "reason": r} for p, r in items[:50]])

    def points_good(self, name: str, points: list[PointSpec], ts: float) -> None:
        h = self.devices[name]
        back = [p for p in points if h.bad.pop(p.label, None) is not None]
        for asset, items in _by_asset([(p, "") for p in back]).items():
            names = ", ".join(p.metric for p, _ in items[:10])
            self._event(h, ts, "info", f"{h.spec.name}: {len(items)} point(s) of {asset} read again: {names}", "points_ok",
                        asset=asset, points=[{"metric": p.metric} for p, _ in items[:50]])

    # -- what the agent reads ----------------------------------------------------------
    def pop_events(self) -> list[dict[str, Any]]:
        with self._lock:
            out = list(self._events)
            self._events.clear()
        return out

    def snapshot(self) -> list[dict[str, Any]]:
        return [h.snapshot() for h in self.devices.values()]

    def _event(self, h: DeviceHealth, ts: float, severity: str, message: str, state: str, *, asset: str | None = None,
               points: list[dict[str, Any]] | None = None) -> None:
        for target in ([asset] if asset else h.spec.assets):
            event: dict[str, Any] = {"asset": target, "ts": ts, "kind": EVENT_KIND, "severity": severity, "message": message,
                                     "device": h.spec.name, "protocol": h.spec.protocol, "state": state}
            if points:
                event["points"] = points
            with self._lock:
                if len(self._events) >= MAX_QUEUED_EVENTS:
                    self.events_dropped += 1
                    continue
                self._events.append(event)

    @staticmethod
    def _label(h: DeviceHealth) -> str:
        return f"{h.spec.name} ({h.spec.protocol} {h.spec.endpoint})"


def _by_asset(items: list[tuple[PointSpec, str]]) -> dict[str, list[tuple[PointSpec, str]]]:
    out: dict[str, list[tuple[PointSpec, str]]] = {}
    for point, reason in items:
        out.setdefault(point.asset, []).append((point, reason))
    return out


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
