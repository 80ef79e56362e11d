"""Modbus TCP and RTU (pymodbus): block reads on per-interval schedules.

Devices behind one TCP endpoint (a Modbus gateway with several unit ids) or one serial line
(an RS-485 bus) share one connection: requests on it go one at a time (pymodbus holds a lock
per client), which is what the bus allows anyway. A block the device refuses with an
address or function exception is split into single points once, so one wrong register in a
map costs that point, not its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from ..blocks import Block, PollGroup, plan_groups, split_block
from ..codec import DecodeError, decode_registers
from ..specs import DeviceSpec, ModbusAddress, ModbusOptions, PointSpec
from . import DeviceDown, next_slot, quiet_library_logs

log = logging.getLogger(__name__)
quiet_library_logs("pymodbus", logging.CRITICAL)  # every refused connect and timeout is its ERROR

EXCEPTIONS = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value", 4: "server device failure",
    5: "acknowledge", 6: "server device busy", 8: "memory parity error", 10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
# Exceptions that say the block itself is wrong (split it to find the point), and the ones
# that say the device behind a gateway is not there at all.
SPLIT_ON = (1, 2, 3)
DEVICE_ABSENT = (10, 11)


class ModbusLink:
    """One pymodbus client (a TCP connection or a serial line) and the devices using it."""

    def __init__(self, opts: ModbusOptions, timeout_s: float) -> None:
        self.opts = opts
        self.timeout_s = timeout_s
        self.client: Any = None
        self.users = 0
        self._connecting = asyncio.Lock()

    async def connected(self) -> Any:
        async with self._connecting:
            if self.client is not None and self.client.connected:
                return self.client
            self.close()
            o = self.opts
            if o.serial:
                client = AsyncModbusSerialClient(o.serial, baudrate=o.baudrate, parity=o.parity, stopbits=o.stopbits,
                                                 bytesize=o.bytesize, timeout=self.timeout_s, retries=0, reconnect_delay=0)
            else:
                client = AsyncModbusTcpClient(o.host or "", port=o.port, timeout=self.timeout_s, retries=0, reconnect_delay=0)
            ok = await asyncio.wait_for(client.connect(), self.timeout_s + 1.0)
            if not ok:
                client.close()
                where = o.serial or f"{o.host}:{o.port}"
                raise DeviceDown(f"cannot connect to {where}")
            self.client = client
            return client

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            finally:
                self.client = None


class Driver:
    def __init__(self, spec: DeviceSpec, sink: Any, health: Any, shared: dict[str, Any], cfg: Any) -> None:
        self.spec = spec
        self.sink = sink
        self.health = health
        opts = spec.options
        assert isinstance(opts, ModbusOptions)
        self.opts = opts
        key = f"modbus:{opts.link}"
        link = shared.get(key)
        if link is None:
            link = shared[key] = ModbusLink(opts, spec.timeout_s)
        self.link: ModbusLink = link
        self.link.users += 1
        self.groups: list[PollGroup] = plan_groups(spec.points, opts.max_block, opts.max_gap)

    async def run(self) -> None:
        await self.link.connected()
        start = time.monotonic()
        for g in self.groups:
            g.next_due = start
        while True:
            group = min(self.groups, key=lambda g: g.next_due)
            delay = group.next_due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.poll(group)
            self.health.device_ok(self.spec.name, "poll")
            group.next_due = next_slot(group.next_due, group.interval_s, time.monotonic())

    async def poll(self, group: PollGroup) -> None:
        ts = time.time()
        raw: list[tuple[PointSpec, Any]] = []
        bad: list[tuple[PointSpec, str]] = []
        i = 0
        while i < len(group.blocks):
            block = group.blocks[i]
            answer = await self._read(block)
            if isinstance(answer, int):  # an exception code
                if answer in DEVICE_ABSENT:
                    raise DeviceDown(f"Modbus exception {answer} ({EXCEPTIONS[answer]})")
                if answer in SPLIT_ON and len(block.points) > 1:
                    log.info("device %s: %s block at %d+%d refused (exception %d); reading its points one by one",
                             self.spec.name, block.table, block.start, block.count, answer)
                    group.blocks[i: i + 1] = split_block(block)
                    continue
                reason = f"Modbus exception {answer} ({EXCEPTIONS.get(answer, 'unknown')})"
                bad += [(p, reason) for p in block.points]
            else:
                self._decode(block, answer, raw, bad)
            i += 1
        if raw or not bad:
            self.sink.values(self.spec.name, ts, raw)
        self.sink.bad(self.spec.name, bad, ts)

    async def _read(self, block: Block) -> list[int] | list[bool] | int:
        client = await self.link.connected()
        unit = self.opts.unit_id
        call = {
            "holding": client.read_holding_registers, "input": client.read_input_registers,
            "coil": client.read_coils, "discrete": client.read_discrete_inputs,
        }[block.table]
        try:
            response = await asyncio.wait_for(call(block.start, count=block.count, device_id=unit), self.spec.timeout_s + 1.0)
        except (ConnectionException, OSError) as exc:
            self.link.close()
            raise DeviceDown(f"connection lost: {exc}") from None
        except (ModbusIOException, TimeoutError):
            if self.link.users == 1:
                self.link.close()  # its own connection: start clean
            raise DeviceDown(f"no answer within {self.spec.timeout_s:g} s") from None
        if response.isError():
            return int(getattr(response, "exception_code", 0) or 0)
        if block.table in ("coil", "discrete"):
            return list(response.bits[: block.count])
        return list(response.registers)

    @staticmethod
    def _decode(block: Block, values: list, raw: list[tuple[PointSpec, Any]], bad: list[tuple[PointSpec, str]]) -> None:
        for p in block.points:
            addr = p.address
            assert isinstance(addr, ModbusAddress)
            offset = addr.register - block.start
            if block.table in ("coil", "discrete"):
                raw.append((p, bool(values[offset])))
                continue
            try:
                raw.append((p, decode_registers(values[offset: offset + addr.count], addr.data_type, addr.byte_order, addr.word_order)))
            except DecodeError as exc:
                bad.append((p, str(exc)))

    async def close(self) -> None:
        self.link.users -= 1
        if self.link.users <= 0:
            self.link.close()
