"""A Modbus device for tests and benchmarks: pymodbus's own server, registers changing over time.

``python -m tests.field.modbus_device --port P --t0 T --period S [--units 1,2] [--serial PATH]``
serves the layout of tests/field/layouts.py (every unit id holds the same values), recomputed
from the tick on every request, so a restarted device continues the same timeline.

``--bench N --registers R --port P``: N devices on ports P..P+N-1, each R uint16 holding
registers; register i of device d holds (k * 7 + d * 131 + i) % 65536 (the benchmark checks it).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from tests.field.layouts import MODBUS_HOLDING_SIZE, modbus_registers, tick


def bench_value(k: int, device: int, register: int) -> int:
    return (k * 7 + device * 131 + register) % 65536


def layout_device(unit: int, t0: float, period: float) -> SimDevice:
    """Holding 0..16, input register 0, coils 0..15 (separate tables, as most devices have)."""
    # Non-shared blocks: coils, discrete inputs, holding registers, input registers.
    holding = [SimData(0, count=MODBUS_HOLDING_SIZE, values=0, datatype=DataType.REGISTERS)]
    inputs = [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)]
    coils = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
    discrete = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
    return SimDevice(unit, simdata=(coils, discrete, holding, inputs), action=_layout_action(t0, period))


def _layout_action(t0: float, period: float):
    async def action(function_code, start_address, address, count, registers, set_values):
        k = tick(time.time(), t0, period)
        regs = modbus_registers(k)
        if function_code == 3:
            for addr, word in regs["holding"].items():
                registers[addr - start_address] = word
        elif function_code == 4:
            for addr, word in regs["input"].items():
                registers[addr - start_address] = word
        elif function_code == 1:
            # bits are packed 16 to a register, lowest address in the lowest bit
            word = 0
            for addr, bit in regs["coil"].items():
                word |= int(bit) << addr
            registers[0] = word
        return None

    return action


def bench_device(device: int, n_registers: int, t0: float, period: float) -> SimDevice:
    async def action(function_code, start_address, address, count, registers, set_values):
        k = tick(time.time(), t0, period)
        for i in range(n_registers):
            registers[i] = bench_value(k, device, i)
        return None

    return SimDevice(1, simdata=[SimData(0, count=n_registers, values=0, datatype=DataType.REGISTERS)], action=action)


async def serve(args: argparse.Namespace) -> None:
    servers = []
    if args.bench:
        for d in range(args.bench):
            server = ModbusTcpServer(bench_device(d, args.registers, args.t0, args.period), address=("127.0.0.1", args.port + d))
            await server.serve_forever(background=True)
            servers.append(server)
    else:
        devices = [layout_device(int(u), args.t0, args.period) for u in args.units.split(",")]
        if args.serial:
            server = ModbusSerialServer(devices, framer=FramerType.RTU, port=args.serial, baudrate=args.baudrate)
        else:
            server = ModbusTcpServer(devices, address=("127.0.0.1", args.port))
        await server.serve_forever(background=True)
        servers.append(server)
    print("ready", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--serial", default="")
    parser.add_argument("--baudrate", type=int, default=19200)
    parser.add_argument("--units", default="1")
    parser.add_argument("--t0", type=float, default=time.time())
    parser.add_argument("--period", type=float, default=0.5)
    parser.add_argument("--bench", type=int, default=0)
    parser.add_argument("--registers", type=int, default=50)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
