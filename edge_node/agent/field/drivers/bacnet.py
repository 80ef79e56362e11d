"""BACnet/IP (bacpypes3): ReadPropertyMultiple polling and COV subscriptions where offered.

The gateway has one BACnet/IP identity (``[bacnet]`` in node.toml: its address and device
instance) and one UDP socket, shared by every BACnet device it reads. A device is found at
its ``address`` or, given only ``device_instance``, by Who-Is. Present values are read with
their status flags: a point whose object reports a fault or is out of service gives no
reading (the object says its value is not to be trusted). Points whose objects accept a COV
subscription are not polled; the device is still read every few seconds so a silent
controller is noticed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from bacpypes3.apdu import ErrorRejectAbortNack
from bacpypes3.basetypes import ErrorType
from bacpypes3.ipv4.app import NormalApplication
from bacpypes3.local.device import DeviceObject
from bacpypes3.pdu import Address, IPv4Address
from bacpypes3.primitivedata import Enumerated, ObjectIdentifier, Real

from ..codec import float32_value
from ..specs import BacnetAddress, BacnetLocal, BacnetOptions, DeviceSpec, PointSpec
from . import DeviceDown, next_slot, quiet_library_logs

log = logging.getLogger(__name__)
quiet_library_logs("bacpypes3")

KEEPALIVE_S = 5.0
COV_BATCH_S = 0.05
FAULT, OUT_OF_SERVICE = 1, 3  # bits of status-flags
COV_OBJECTS = ("analog-input", "analog-output", "analog-value", "binary-input", "binary-output", "binary-value",
               "multi-state-input", "multi-state-output", "multi-state-value", "large-analog-value", "integer-value",
               "positive-integer-value")


class BacnetStack:
    """The gateway's BACnet application (one per gateway, made on first use)."""

    def __init__(self, local: BacnetLocal) -> None:
        device = DeviceObject(objectIdentifier=("device", local.device_instance), objectName=local.name,
                              vendorIdentifier=999)
        self.app = NormalApplication(device, IPv4Address(local.address))

    def close(self) -> None:
        self.app.close()


def stack_for(shared: dict[str, Any], local: BacnetLocal) -> BacnetStack:
    stack = shared.get("bacnet")
    if stack is None:
        try:
            stack = shared["bacnet"] = BacnetStack(local)
        except OSError as exc:
            raise DeviceDown(f"cannot open this gateway's BACnet/IP socket at {local.address}: {exc.strerror or exc}") from None
    return stack


def to_raw(value: Any) -> Any:
    if isinstance(value, Enumerated):
        return str(value)
    if isinstance(value, Real):
        return float32_value(float(value))
    if isinstance(value, bool | int | float):
        return value
    return str(value)


class Refused(str):
    """The device answered no (the text says why)."""


def refusal_text(pdu: Any) -> str:
    for attr in ("errorCode", "rejectReason", "abortReason"):
        value = getattr(pdu, attr, None)
        if value is not None:
            return f"{type(pdu).__name__.lower()}: {value}"
    return type(pdu).__name__


def error_text(value: Any) -> str:
    if isinstance(value, ErrorType):
        return f"{value.errorClass}: {value.errorCode}"
    return str(value)


class Driver:
    def __init__(self, spec: DeviceSpec, sink: Any, health: Any, shared: dict[str, Any], cfg: Any) -> None:
        self.spec = spec
        self.sink = sink
        self.health = health
        opts = spec.options
        assert isinstance(opts, BacnetOptions)
        self.opts = opts
        self.stack = stack_for(shared, cfg.bacnet)
        self.app = self.stack.app
        self.address: Address | None = None
        self.device_id: ObjectIdentifier | None = None
        self.last_exchange = time.monotonic()
        self._cov_pending: list[tuple[PointSpec, Any]] = []
        self._cov_ts = 0.0

    async def run(self) -> None:
        await self._find()
        cov_points: list[PointSpec] = []
        if self.opts.cov:
            cov_points = [p for p in self.spec.points if p.address.prop == "present-value"  # type: ignore[union-attr]
                          and p.address.object_type in COV_OBJECTS]  # type: ignore[union-attr]
        tasks: list[asyncio.Task] = []
        try:
            loop = asyncio.get_running_loop()
            started = {p.label: loop.create_future() for p in cov_points}
            tasks += [asyncio.create_task(self._cov(p, started[p.label])) for p in cov_points]
            if started:
                await asyncio.wait(started.values(), timeout=self.spec.timeout_s * 2)
            covered = {label for label, f in started.items() if f.done() and f.result()}
            polled = [p for p in self.spec.points if p.label not in covered]
            mode = "cov" if covered and not polled else "cov+poll" if covered else "poll"
            if polled:
                tasks.append(asyncio.create_task(self._poll(polled)))
            tasks.append(asyncio.create_task(self._keepalive()))
            self.health.device_ok(self.spec.name, mode)
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()
            raise DeviceDown("the device tasks ended")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _request(self, coro: Any) -> Any:
        try:
            result = await asyncio.wait_for(coro, self.spec.timeout_s)
        except TimeoutError:
            raise DeviceDown(f"no answer within {self.spec.timeout_s:g} s") from None
        if isinstance(result, ErrorRejectAbortNack):
            raise DeviceDown(f"request refused: {result}")
        self.last_exchange = time.monotonic()
        return result

    async def _find(self) -> None:
        o = self.opts
        if o.address:
            self.address = Address(o.address)
        instance = o.device_instance
        if instance is None or self.address is None:
            # Who-Is: broadcast for a device instance, or sent to the address to learn its instance.
            found = await self._request(self.app.who_is(instance, instance, self.address, timeout=self.spec.timeout_s * 0.8))
            if isinstance(found, Refused) or not found:
                raise DeviceDown(f"no I-Am from {o.address or f'device {instance}'}")
            self.address = self.address or found[0].pduSource
            instance = found[0].iAmDeviceIdentifier[1]
        self.device_id = ObjectIdentifier(("device", instance))
        name = await self._request(self.app.read_property(self.address, self.device_id, "object-name"))
        if isinstance(name, Refused | ErrorType):
            raise DeviceDown(f"device {instance} at {self.address}: object not readable ({error_text(name)})")

    async def _poll(self, points: list[PointSpec]) -> None:
        groups: dict[float, list[PointSpec]] = {}
        for p in points:
            groups.setdefault(p.poll_interval_s, []).append(p)
        due = {interval: time.monotonic() for interval in groups}
        while True:
            interval = min(due, key=due.__getitem__)
            delay = due[interval] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.read_points(groups[interval])
            due[interval] = next_slot(due[interval], interval, time.monotonic())

    async def read_points(self, points: list[PointSpec]) -> None:
        ts = time.time()
        raw: list[tuple[PointSpec, Any]] = []
        bad: list[tuple[PointSpec, str]] = []
        step = self.opts.max_rpm_points
        for i in range(0, len(points), step):
            chunk = points[i: i + step]
            params: list[Any] = []
            for p in chunk:
                addr = p.address
                assert isinstance(addr, BacnetAddress)
                props = [addr.prop, "status-flags"] if addr.prop == "present-value" else [addr.prop]
                params += [ObjectIdentifier(addr.object_id), props]
            results = await self._request(self.app.read_property_multiple(self.address, params))
            if isinstance(results, Refused):
                bad += [(p, f"ReadPropertyMultiple refused ({results})") for p in chunk]
                continue
            answers = {(str(objid), str(prop)): value for objid, prop, _index, value in results}
            for p in chunk:
                addr = p.address
                assert isinstance(addr, BacnetAddress)
                key = str(ObjectIdentifier(addr.object_id))
                value = answers.get((key, addr.prop))
                flags = answers.get((key, "status-flags"))
                problem = self._problem(value, flags)
                if problem:
                    bad.append((p, problem))
                else:
                    raw.append((p, to_raw(value)))
        if raw or not bad:
            self.sink.values(self.spec.name, ts, raw)
        self.sink.bad(self.spec.name, bad, ts)
        self.health.device_ok(self.spec.name)

    @staticmethod
    def _problem(value: Any, flags: Any) -> str | None:
        if value is None:
            return "not in the device's answer"
        if isinstance(value, ErrorType):
            return error_text(value)
        if flags is not None and not isinstance(flags, ErrorType):
            bits = list(flags)
            if len(bits) > FAULT and bits[FAULT]:
                return "the object reports a fault"
            if len(bits) > OUT_OF_SERVICE and bits[OUT_OF_SERVICE]:
                return "the object is out of service"
        return None

    async def _cov(self, point: PointSpec, started: asyncio.Future) -> None:
        addr = point.address
        assert isinstance(addr, BacnetAddress)
        objid = ObjectIdentifier(addr.object_id)
        try:
            scm = self.app.change_of_value(self.address, objid, None, False, self.opts.cov_lifetime_s)
            async with scm:
                if not started.done():
                    started.set_result(True)
                flags: Any = None
                while True:
                    # A notification carries present-value and status-flags; bacpypes3 queues
                    # them one by one, together: take what is there before judging the value.
                    items = [await scm.get_value()]
                    while not scm.queue.empty():
                        items.append(await scm.get_value())
                    self.last_exchange = time.monotonic()
                    batch = {str(prop): value for prop, value in items}
                    flags = batch.get("status-flags", flags)
                    if "present-value" not in batch:
                        continue
                    value = batch["present-value"]
                    problem = self._problem(value, flags)
                    if problem:
                        self.sink.bad(self.spec.name, [(point, problem)], time.time())
                    else:
                        self._queue_cov(point, to_raw(value))
        except asyncio.CancelledError:
            raise
        except (Exception, ErrorRejectAbortNack) as exc:  # noqa: BLE001 - a refused subscription means: poll this point
            if not started.done():
                log.info("device %s: no COV for %s (%s); polling it", self.spec.name, addr.object_id, exc)
                started.set_result(False)
                return
            raise DeviceDown(f"COV subscription for {addr.object_id} ended: {exc}") from None

    def _queue_cov(self, point: PointSpec, value: Any) -> None:
        """COV notifications come one object per datagram: those of COV_BATCH_S become one
        reading (with the time of the first), not one reading per object."""
        if not self._cov_pending:
            self._cov_ts = time.time()
            asyncio.get_running_loop().call_later(COV_BATCH_S, self._flush_cov)
        self._cov_pending.append((point, value))

    def _flush_cov(self) -> None:
        pending, self._cov_pending = self._cov_pending, []
        if pending:
            self.sink.values(self.spec.name, self._cov_ts, pending)
            self.health.device_ok(self.spec.name)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            if time.monotonic() - self.last_exchange < KEEPALIVE_S:
                continue
            value = await self._request(self.app.read_property(self.address, self.device_id, "system-status"))
            if isinstance(value, Refused | ErrorType):
                raise DeviceDown(f"device object not readable: {error_text(value)}")
            self.health.device_ok(self.spec.name)

    async def close(self) -> None:
        """The shared stack stays open for the other devices (the runtime closes it at the end)."""
