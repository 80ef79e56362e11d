"""The gateway runtime: one asyncio event loop on its own thread runs every field device, each
in its own task with its own schedule, timeouts and reconnect backoff; readings reach the agent
through one ``FieldSource`` per platform asset.

Why one loop: pymodbus, asyncua and bacpypes3 are all asyncio libraries, and a gateway reading
a hundred devices needs a hundred waits in flight, not a hundred threads. A device that stops
answering costs its own task a timeout; the others keep their schedules. Every exception from
a device (or a driver bug) is caught at that device's boundary, recorded as its health, and
the task reconnects after a backoff (1 s doubling to 60 s, with jitter).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import threading
import time
from collections import deque
from typing import Any, ClassVar

from .. import const
from ..sources.base import Sample, Source
from .codec import DecodeError
from .drivers import DeviceDown, make_driver
from .health import HealthBoard
from .specs import DeviceSpec, FieldAsset, FieldConfig, PointSpec

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 60.0
MAX_QUEUED_READINGS = 20_000  # per asset, while the agent is busy: the oldest go first
STOP_TIMEOUT_S = 5.0


class FieldSource(Source):
    """A platform asset fed by field devices: ``step`` hands over what arrived since the last
    call, each reading with the time it was read (so ``sim_t`` = read time - agent start)."""

    PARAMS: ClassVar[dict[str, Any]] = {}

    def __init__(self, asset: FieldAsset, t0: float) -> None:
        super().__init__(asset.asset)
        self.asset_type = asset.asset_type  # type: ignore[misc]
        self.detect = asset.detect
        self.t0 = t0
        self.queue: deque[tuple[float, dict[str, float]]] = deque()
        self.dropped = 0

    def push(self, ts: float, values: dict[str, float]) -> None:
        if len(self.queue) >= MAX_QUEUED_READINGS:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append((ts, values))

    def step(self, sim_t: float) -> list[Sample]:
        out = []
        queue = self.queue
        while queue:
            ts, values = queue.popleft()
            out.append(Sample(ts - self.t0, values, raw_bytes=const.RAW_BYTES_SLOW * len(values)))
        return out

    def detect_metrics(self) -> list[str] | None:
        return list(self.detect)

    def inject_fault(self, *args: Any, **kwargs: Any) -> Any:
        from ..sources.base import SourceError

        raise SourceError(f"{self.asset_id} is a real device: faults cannot be injected")

    def metric_names(self) -> list[str]:
        return []


class Sink:
    """Where drivers hand their raw values (event-loop thread): conversion, range check,
    health, and the reading for each asset."""

    def __init__(self, sources: dict[str, FieldSource], health: HealthBoard, wake: threading.Event | None) -> None:
        self.sources = sources
        self.health = health
        self.wake = wake

    def values(self, device: str, ts: float, raw: list[tuple[PointSpec, Any]]) -> None:
        """One exchange's values (a poll, a notification), all read at ``ts``."""
        per_asset: dict[str, dict[str, float]] = {}
        bad: list[tuple[PointSpec, str]] | None = None
        for point, value in raw:
            try:
                v = point.transform.apply(value)
            except DecodeError as exc:
                bad = bad or []
                bad.append((point, str(exc)))
                continue
            rng = point.value_range
            if rng is not None and not rng[0] <= v <= rng[1]:
                bad = bad or []
                bad.append((point, f"{v:g} {point.metric_unit or ''} is outside [{rng[0]:g}, {rng[1]:g}]".replace("  ", " ")))
                continue
            values = per_asset.get(point.asset)
            if values is None:
                values = per_asset[point.asset] = {}
            values[point.metric] = v
        h = self.health.devices[device]
        h.reads += 1
        if h.bad:
            failed = {p.label for p, _ in bad} if bad else set()
            good = [p for p, _ in raw if p.label in h.bad and p.label not in failed]
            if good:
                self.health.points_good(device, good, ts)
        if bad:
            self.health.points_bad(device, bad, ts)
        n = 0
        for asset, values in per_asset.items():
            source = self.sources[asset]
            before = source.dropped
            source.push(ts, values)
            h.dropped += source.dropped - before
            n += len(values)
        h.values += n
        if n and self.wake is not None:
            self.wake.set()

    def bad(self, device: str, failures: list[tuple[PointSpec, str]], ts: float) -> None:
        """Points of an exchange that failed as a whole (a Modbus exception for a block, a
        BACnet error for an object, an OPC UA bad status)."""
        if failures:
            self.health.points_bad(device, failures, ts)


class FieldGateway:
    def __init__(self, cfg: FieldConfig, t0: float, wake: threading.Event | None = None) -> None:
        self.cfg = cfg
        self.sources = {a: FieldSource(spec, t0) for a, spec in cfg.assets.items()}
        self.health = HealthBoard(cfg.devices)
        self.sink = Sink(self.sources, self.health, wake)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._main: asyncio.Task | None = None
        self._stopping = False

    # -- lifecycle (agent thread) -----------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run_loop, args=(ready,), name="field-gateway", daemon=True)
        self._thread.start()
        ready.wait(5)
        asyncio.run_coroutine_threadsafe(self._spawn(), self._loop).result(5)

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._stopping = True
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(STOP_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            log.warning("field gateway: devices did not close within %.0f s", STOP_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("field gateway: the event loop did not stop within %.0f s", STOP_TIMEOUT_S)
        else:
            self._loop.close()
        self._thread = None
        self._loop = None

    def _run_loop(self, ready: threading.Event) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(ready.set)
        self._loop.run_forever()

    # -- the devices (event-loop thread) -------------------------------------------------
    async def _spawn(self) -> None:
        self._main = asyncio.create_task(self._run_devices(), name="field devices")

    async def _shutdown(self) -> None:
        """Cancel every device task and wait until their connections are closed."""
        task = self._main
        if task is None:
            return
        task.cancel()
        results = await asyncio.gather(task, return_exceptions=True)
        if results and isinstance(results[0], BaseException) and not isinstance(results[0], asyncio.CancelledError):
            log.error("field gateway ended with %s: %s", type(results[0]).__name__, results[0])

    async def _run_devices(self) -> None:
        shared: dict[str, Any] = {}
        tasks = [asyncio.create_task(self._run_device(spec, shared), name=f"device {spec.name}") for spec in self.cfg.devices]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for stack in shared.values():
                closer = getattr(stack, "close", None)
                if closer is not None:
                    try:
                        result = closer()
                        if asyncio.iscoroutine(result):
                            await asyncio.wait_for(result, 2.0)
                    except Exception:  # noqa: BLE001 - shutting down: log and go on closing the rest
                        log.exception("field gateway: closing a shared link failed")

    async def _run_device(self, spec: DeviceSpec, shared: dict[str, Any]) -> None:
        backoff = BACKOFF_MIN_S
        health = self.health.devices[spec.name]
        while not self._stopping:
            driver = make_driver(spec, self.sink, self.health, shared, self.cfg)
            reason = ""
            try:
                await driver.run()
                reason = "the driver stopped"
            except asyncio.CancelledError:
                await _close_quietly(driver)
                raise
            except DeviceDown as exc:
                reason = str(exc)
            except (OSError, TimeoutError, ConnectionError) as exc:
                reason = _describe(exc, spec)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: BLE001 - one device's failure, whatever it is, stays its own
                # (BaseException: bacpypes3 raises its error PDUs as BaseExceptions)
                reason = _describe(exc, spec)
                log.exception("device %s: unexpected error (reconnecting)", spec.name)
            await _close_quietly(driver)
            was_ok = health.state == "ok"
            self.health.device_down(spec.name, reason)
            if was_ok:
                backoff = BACKOFF_MIN_S
                log.warning("device %s (%s): %s; reconnecting", spec.name, spec.endpoint, reason)
            delay = backoff * random.uniform(0.8, 1.2)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            await asyncio.sleep(delay)


async def _close_quietly(driver: Any) -> None:
    try:
        await asyncio.wait_for(driver.close(), 2.0)
    except Exception:  # noqa: BLE001 - a connection that will not close cleanly is abandoned
        log.debug("closing a driver failed", exc_info=True)


def _describe(exc: BaseException, spec: DeviceSpec) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"no answer within {spec.timeout_s:g} s"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def wall_time() -> float:
    return time.time()
