"""Discover BACnet/IP devices: Who-Is (broadcast, or sent to one address), then each device's
object list, and per object its name, units and present value (ReadPropertyMultiple)."""

from __future__ import annotations

import asyncio
from typing import Any

from bacpypes3.apdu import ErrorRejectAbortNack
from bacpypes3.basetypes import ErrorType
from bacpypes3.ipv4.app import NormalApplication
from bacpypes3.local.device import DeviceObject
from bacpypes3.pdu import Address, IPv4Address
from bacpypes3.primitivedata import ObjectIdentifier

from .discover import DiscoverError, FoundDevice, FoundPoint, slug
from .drivers.bacnet import to_raw
from .pointmap import BACNET_OBJECT_TYPES
from .units import BACNET_UNITS

RPM_OBJECTS = 10


async def discover_bacnet(local: str, address: str | None, wait: float, timeout: float) -> list[FoundDevice]:
    me = DeviceObject(objectIdentifier=("device", 4194300), objectName="aiot-discover", vendorIdentifier=999)
    try:
        app = NormalApplication(me, IPv4Address(local))
    except OSError as exc:
        raise DiscoverError(f"cannot bind {local}: {exc.strerror or exc} (use --local ADDRESS:PORT)") from None
    try:
        # answers are collected for ``wait`` seconds (a directed Who-Is may be answered sooner)
        i_ams = await asyncio.wait_for(app.who_is(None, None, Address(address) if address else None, timeout=wait), wait + 2)
        if not i_ams:
            raise DiscoverError(f"no I-Am from {address or 'the local network'} within {wait:g} s")
        devices = []
        for i_am in i_ams:
            devices.append(await _device(app, i_am, timeout))
        return devices
    finally:
        app.close()


async def _read(app: NormalApplication, coro: Any, timeout: float) -> Any:
    try:
        return await asyncio.wait_for(coro, timeout)
    except ErrorRejectAbortNack as exc:  # bacpypes3 raises refusals (BaseException)
        return exc
    except TimeoutError:
        return None


async def _device(app: NormalApplication, i_am: Any, timeout: float) -> FoundDevice:
    source = i_am.pduSource
    instance = i_am.iAmDeviceIdentifier[1]
    device_id = ObjectIdentifier(("device", instance))
    name = await _read(app, app.read_property(source, device_id, "object-name"), timeout)
    objects = await _read(app, app.read_property(source, device_id, "object-list"), timeout)
    label = str(name) if isinstance(name, str) else f"device-{instance}"
    found = FoundDevice(
        name=slug(label, f"bacnet-{instance}"),
        keys={"name": slug(label, f"bacnet-{instance}"), "protocol": "bacnet", "address": str(source),
              "device_instance": instance, "asset": "CHANGE-ME", "poll_interval_s": 5.0, "cov": True},
        notes=[f"BACnet device {instance} '{label}' at {source}"],
    )
    if not isinstance(objects, list):
        found.notes.append("its object-list could not be read (a large list needs reading item by item)")
        return found
    wanted = [ObjectIdentifier(o) for o in objects if str(o[0]) in BACNET_OBJECT_TYPES]
    for i in range(0, len(wanted), RPM_OBJECTS):
        chunk = wanted[i: i + RPM_OBJECTS]
        params: list[Any] = []
        for oid in chunk:
            params += [oid, ["object-name", "present-value", "units"]]
        results = await _read(app, app.read_property_multiple(source, params), timeout * 2)
        if not isinstance(results, list):
            found.notes.append(f"objects {chunk[0]}..{chunk[-1]}: ReadPropertyMultiple refused ({results})")
            continue
        props: dict[str, dict[str, Any]] = {}
        for oid, prop, _index, value in results:
            props.setdefault(str(oid), {})[str(prop)] = value
        for oid in chunk:
            p = props.get(str(oid), {})
            obj_name = p.get("object-name")
            value = p.get("present-value")
            units = p.get("units")
            keys: dict[str, Any] = {"object": f"{oid[0]},{oid[1]}"}
            unit = BACNET_UNITS.get(str(units)) if units is not None and not isinstance(units, ErrorType) else None
            if unit:
                keys["unit"] = unit
            shown = "unreadable" if value is None or isinstance(value, ErrorType) else repr(to_raw(value))
            text = f"'{obj_name}': present-value {shown}" + (f" {units}" if units is not None and not isinstance(units, ErrorType) else "")
            found.points.append(FoundPoint(slug(str(obj_name or ""), f"{oid[0]}_{oid[1]}".replace("-", "_")), keys, text))
    return found
