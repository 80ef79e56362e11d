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
from . import DeviceDown

log = logging.getLogger(__name__)

KEEPALIVE_S = 5.0
WILDCARD_DEVICE = 4194303
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

    async def run(self) -> None:
        await self._find()
        cov_points: list[PointSpec] = []
        if self.opts.cov:
            cov_points = [p for p in self.spec.points if p.address.prop == "present-value"  # type: ignore[union-attr]
                          and p.address.object_type in COV_OBJECTS]  # type: ignore[union-attr]
        tasks: list[asyncio.Task] = []
        covered: set[PointSpec] = set()
        for p in cov_points:
            started = asyncio.get_running_loop().create_future()
            tasks.append(asyncio.create_task(self._cov(p, started)))
            try:
                if await asyncio.wait_for(started, self.spec.timeout_s):
                    covered.add(p)
            except TimeoutError:
                pass
        polled = [p for p in self.spec.points if p not in covered]
        mode = "cov" if covered and not polled else "cov+poll" if covered else "poll"
        if polled:
            tasks.append(asyncio.create_task(self._poll(polled)))
        tasks.append(asyncio.create_task(self._keepalive()))
        self.health.device_ok(self.spec.name, mode)
        try:
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
        else:
            found = await self._request(self.app.who_is(o.device_instance, o.device_instance))
            if not found:
                raise DeviceDown(f"no I-Am from device {o.device_instance}")
            self.address = found[0].pduSource
        instance = o.device_instance if o.device_instance is not None else WILDCARD_DEVICE
        ident = await self._request(self.app.read_property(self.address, ObjectIdentifier(("device", instance)), "object-identifier"))
        if isinstance(ident, ErrorType):
            raise DeviceDown(f"device object not readable: {error_text(ident)}")
        self.device_id = ObjectIdentifier(ident)

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
            now = time.monotonic()
            due[interval] += interval
            if due[interval] <= now:
                due[interval] = now + interval

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
                started.set_result(True)
                flags: Any = None
                while True:
                    prop, value = await scm.get_value()
                    self.last_exchange = time.monotonic()
                    name = str(prop)
                    if name == "status-flags":
                        flags = value
                        continue
                    if name != "present-value":
                        continue
                    ts = time.time()
                    problem = self._problem(value, flags)
                    if problem:
                        self.sink.bad(self.spec.name, [(point, problem)], ts)
                    else:
                        self.sink.values(self.spec.name, ts, [(point, to_raw(value))])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a refused subscription means: poll this point
            if not started.done():
                log.info("device %s: no COV for %s (%s); polling it", self.spec.name, addr.object_id, exc)
                started.set_result(False)
                return
            raise DeviceDown(f"COV subscription for {addr.object_id} ended: {exc}") from None

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            if time.monotonic() - self.last_exchange < KEEPALIVE_S:
                continue
            value = await self._request(self.app.read_property(self.address, self.device_id, "system-status"))
            if isinstance(value, ErrorType):
                raise DeviceDown(f"device object not readable: {error_text(value)}")
            self.health.device_ok(self.spec.name)

    async def close(self) -> None:
        """The shared stack stays open for the other devices (the runtime closes it at the end)."""
