"""A BACnet/IP device for tests and benchmarks: a bacpypes3 application with objects whose
present values change every tick, on 127.0.0.1:<port>.

``python -m tests.field.bacnet_device --port P --instance I --t0 T --period S`` serves the
objects of tests/field/layouts.py (COV-capable, as bacpypes3's local objects are) plus
``analog-input,9`` whose status flags report a fault.

``--bench N``: N analog-value objects (instance i holds k * 1000 + i), for the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bacpypes3.ipv4.app import NormalApplication
from bacpypes3.local.analog import AnalogInputObject, AnalogValueObject
from bacpypes3.local.binary import BinaryInputObject
from bacpypes3.local.cov import GenericCriteria
from bacpypes3.local.device import DeviceObject
from bacpypes3.local.multistate import MultiStateValueObject
from bacpypes3.pdu import IPv4Address

from tests.field.layouts import BACNET_FAULTY, BACNET_OBJECTS, tick


class MultiStateValue(MultiStateValueObject):
    # bacpypes3 0.0.110 gives multi-state objects the COV-increment criteria, which they have no
    # increment for: the first value change after a subscription crashes the device. BACnet's
    # criteria for them is "any change" (generic).
    _cov_criteria = GenericCriteria


CLASSES = {"analog-input": AnalogInputObject, "analog-value": AnalogValueObject, "binary-input": BinaryInputObject,
           "multi-state-value": MultiStateValue}
UNITS = {"supply_temp_c": "degreesCelsius", "return_temp_f": "degreesFahrenheit", "tick": "noUnits"}


def build(args: argparse.Namespace) -> tuple[NormalApplication, list]:
    device = DeviceObject(objectIdentifier=("device", args.instance), objectName=f"ahu-controller-{args.instance}",
                          vendorIdentifier=999)
    app = NormalApplication(device, IPv4Address(f"127.0.0.1:{args.port}"))
    objects = []
    if args.bench:
        for i in range(args.bench):
            obj = AnalogValueObject(objectIdentifier=("analog-value", i), objectName=f"v{i}", presentValue=0.0,
                                    units="noUnits", covIncrement=0.0)
            app.add_object(obj)
            objects.append((obj, lambda k, i=i: float(k * 1000 + i)))
        return app, objects
    for spec in BACNET_OBJECTS:
        kind, instance = spec.object_id.split(",")
        extra = {}
        if kind.startswith("analog"):
            extra = {"units": UNITS.get(spec.metric, "noUnits"), "covIncrement": 0.0}
        if kind.startswith("multi-state"):
            extra = {"numberOfStates": 3}
        obj = CLASSES[kind](objectIdentifier=(kind, int(instance)), objectName=spec.metric, presentValue=spec.raw(0), **extra)
        app.add_object(obj)
        objects.append((obj, spec.raw))
    kind, instance = BACNET_FAULTY.split(",")
    faulty = AnalogInputObject(objectIdentifier=(kind, int(instance)), objectName="damper_pos", presentValue=42.0,
                               units="percent", reliability="unreliable-other")  # status-flags: fault
    app.add_object(faulty)
    return app, objects


async def serve(args: argparse.Namespace) -> None:
    app, objects = build(args)
    print("ready", flush=True)
    last = -1
    while True:
        k = tick(time.time(), args.t0, args.period)
        if k != last:
            last = k
            for obj, raw in objects:
                obj.presentValue = raw(k)
        await asyncio.sleep(min(0.05, args.period / 5))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--instance", type=int, default=1001)
    parser.add_argument("--t0", type=float, default=time.time())
    parser.add_argument("--period", type=float, default=0.5)
    parser.add_argument("--bench", type=int, default=0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
