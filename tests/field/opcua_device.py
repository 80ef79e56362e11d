"""An OPC UA machine for tests and benchmarks: asyncua's server, variables changing every tick.

``python -m tests.field.opcua_device --port P --t0 T --period S [--user U --password W]
[--cert C --key K]`` serves the variables of tests/field/layouts.py under
``ns=<urn:aiot:test-machine>;s=Machine.<name>``, plus ``Machine.probe_mm`` whose status is
Bad_SensorFailure every other 6 ticks. With ``--cert/--key`` the server also offers
Basic256Sha256 (Sign and SignAndEncrypt); with ``--user`` it refuses anonymous sessions.

``--bench N --hz H``: N Double variables ``Machine.v<i>``, all written H times a second; variable
i holds k * 1000 + i (k counts the writes), which the benchmark checks.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from datetime import UTC, datetime

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager

from tests.field.layouts import UA_BAD_VARIABLE, UA_NAMESPACE, UA_VARIABLES, tick, ua_probe


class PasswordUsers(UserManager):
    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username == self.username and password == self.password:
            return User(role=UserRole.User, name=username)
        return None


async def serve(args: argparse.Namespace) -> None:
    users = PasswordUsers(args.user, args.password) if args.user else None
    server = Server(user_manager=users)
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{args.port}/aiot/")
    server.set_server_name("AIoT test machine")
    policies = [ua.SecurityPolicyType.NoSecurity]
    if args.cert:
        await server.load_certificate(args.cert)
        await server.load_private_key(args.key)
        policies += [ua.SecurityPolicyType.Basic256Sha256_Sign, ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
        if args.secure_only:
            policies = policies[1:]
    server.set_security_policy(policies)
    if args.user:
        server.set_security_IDs(["Username"])
    idx = await server.register_namespace(UA_NAMESPACE)
    machine = await server.nodes.objects.add_object(ua.NodeId("Machine", idx), "Machine")
    nodes: list[tuple[ua.NodeId, str, object]] = []
    if args.bench:
        for i in range(args.bench):
            var = await machine.add_variable(ua.NodeId(f"Machine.v{i}", idx), f"v{i}", 0.0, ua.VariantType.Double)
            nodes.append((var.nodeid, "Double", i))
    else:
        for v in UA_VARIABLES:
            vtype = getattr(ua.VariantType, v.variant)
            var = await machine.add_variable(ua.NodeId(f"Machine.{v.name}", idx), v.name, ua.Variant(v.raw(0), vtype))
            nodes.append((var.nodeid, v.variant, v.raw))
        probe = await machine.add_variable(ua.NodeId(f"Machine.{UA_BAD_VARIABLE}", idx), UA_BAD_VARIABLE, 0.0, ua.VariantType.Double)
    async with server:
        print("ready", flush=True)
        if args.bench:
            await _bench_writes(server, nodes, args.hz)
            return
        last = -1
        while True:
            k = tick(time.time(), args.t0, args.period)
            if k != last:
                last = k
                stamp = datetime.now(UTC)  # one source timestamp per scan, as a PLC gives
                for nodeid, variant, raw in nodes:
                    value = ua.Variant(raw(k), getattr(ua.VariantType, variant))  # type: ignore[operator]
                    await server.write_attribute_value(nodeid, ua.DataValue(value, SourceTimestamp=stamp))
                value, good = ua_probe(k)
                status = ua.StatusCode(ua.StatusCodes.Good if good else ua.StatusCodes.BadSensorFailure)
                await server.write_attribute_value(probe.nodeid, ua.DataValue(ua.Variant(value, ua.VariantType.Double),
                                                                              StatusCode=status, SourceTimestamp=stamp))
            await asyncio.sleep(min(0.05, args.period / 5))


class FreshDataValue(ua.DataValue):
    """A DataValue that is never changed after it is written: asyncua's server deep-copies every
    written value for each monitored item (in case the writer changes it afterwards), which was
    three quarters of this server's CPU at 10,000 changes a second. The bench builds a new value
    for every write and never touches it again, so a copy may be the value itself."""

    def __deepcopy__(self, memo: dict) -> FreshDataValue:
        return self


async def _bench_writes(server: Server, nodes: list, hz: float) -> None:
    k = 0
    started = time.perf_counter()
    while True:
        k += 1
        stamp = datetime.now(UTC)
        for nodeid, _variant, i in nodes:
            await server.write_attribute_value(nodeid, FreshDataValue(ua.Variant(float(k * 1000 + i), ua.VariantType.Double),
                                                                      SourceTimestamp=stamp))
        print(f"write {k} {stamp.timestamp():.6f}", file=sys.stderr, flush=True)  # the benchmark counts them
        await asyncio.sleep(max(0.0, started + k / hz - time.perf_counter()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--t0", type=float, default=time.time())
    parser.add_argument("--period", type=float, default=0.5)
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--cert", default="")
    parser.add_argument("--key", default="")
    parser.add_argument("--secure-only", action="store_true")
    parser.add_argument("--bench", type=int, default=0)
    parser.add_argument("--hz", type=float, default=10.0)
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
