"""Discover a Modbus TCP device: which registers of a range answer, and what they hold now.

Reads in blocks of up to 125 registers; a block the device refuses is halved until the
readable registers are found (a register map has holes). Each readable register is printed
as a uint16 point, with its value and, where it and the next one are readable, what the
pair reads as a float32 and a 32-bit integer in both word orders: a meter's 0x4366 0x199A is
230.1 V, obvious once seen.
"""

from __future__ import annotations

import asyncio

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from .codec import decode_registers
from .discover import DiscoverError, FoundDevice, FoundPoint

BLOCK = 125
MAX_REQUESTS = 2000


async def discover_modbus(target: str, scan: tuple[int, int], unit: int, table: str, timeout: float) -> list[FoundDevice]:
    host, _, port_text = target.partition(":")
    port = int(port_text or 502)
    client = AsyncModbusTcpClient(host, port=port, timeout=timeout, retries=0, reconnect_delay=0)
    try:
        if not await asyncio.wait_for(client.connect(), timeout + 1):
            raise DiscoverError(f"cannot connect to {host}:{port}")
    except (OSError, TimeoutError) as exc:
        raise DiscoverError(f"cannot connect to {host}:{port}: {exc}") from None
    read = client.read_holding_registers if table == "holding" else client.read_input_registers
    values: dict[int, int] = {}
    requests = 0

    async def probe(start: int, count: int) -> None:
        nonlocal requests
        if requests >= MAX_REQUESTS:
            return
        requests += 1
        try:
            response = await asyncio.wait_for(read(start, count=count, device_id=unit), timeout + 1)
        except (ModbusException, TimeoutError) as exc:
            raise DiscoverError(f"{host}:{port} unit {unit}: no answer ({exc})") from None
        if not response.isError():
            values.update({start + i: v for i, v in enumerate(response.registers)})
        elif count > 1:
            half = count // 2
            await probe(start, half)
            await probe(start + half, count - half)

    try:
        lo, hi = scan
        for start in range(lo, hi + 1, BLOCK):
            await probe(start, min(BLOCK, hi + 1 - start))
    finally:
        client.close()
    device = FoundDevice(
        name=f"modbus-{host.replace('.', '-')}-{unit}",
        keys={"name": f"modbus-{host.replace('.', '-')}-{unit}", "protocol": "modbus", "host": host, "port": port,
              "unit_id": unit, "asset": "CHANGE-ME", "poll_interval_s": 1.0},
        notes=[f"{len(values)} readable {table} register(s) of {scan[0]}-{scan[1]} at unit {unit}"
               f"{'' if requests < MAX_REQUESTS else ' (stopped after ' + str(MAX_REQUESTS) + ' requests)'}.",
               "Each is a uint16 here: two registers holding a float32 or a 32-bit integer are ONE point",
               "(keep the first, set type and word_order as the comment suggests, delete the second)."],
    )
    for reg in sorted(values):
        device.points.append(FoundPoint(f"{table}_{reg}", {"table": table, "register": reg, "type": "uint16"},
                                        describe(values, reg)))
    return [device]


def describe(values: dict[int, int], reg: int) -> str:
    raw = values[reg]
    text = f"now {raw} (int16 {decode_registers([raw], 'int16')}, 0x{raw:04X})"
    if reg + 1 in values:
        pair = [raw, values[reg + 1]]
        f_big = decode_registers(pair, "float32")
        f_little = decode_registers(pair, "float32", word_order="little")
        i_big = decode_registers(pair, "int32")
        text += f"; with {reg + 1}: float32 {f_big:g} / word-swapped {f_little:g}, int32 {i_big}"
    return text
