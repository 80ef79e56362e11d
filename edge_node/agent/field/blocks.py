"""Modbus read planning: contiguous registers of a device are read in blocks, one request per
block, not one per point.

Points are grouped by poll interval (each group is one schedule), then by table (holding,
input, coil, discrete); within a table they are sorted by address and merged while the block
stays within ``max_block`` registers and the hole between two points is at most ``max_gap``
(reading a few unused registers costs less than another round trip, but some devices refuse
reads that touch registers they do not have: the default gap is 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .specs import ModbusAddress, PointSpec

MAX_BITS_PER_READ = 2000  # coils / discrete inputs per request (the protocol's limit)


@dataclass
class Block:
    table: str
    start: int
    count: int
    points: list[PointSpec] = field(default_factory=list)

    @property
    def end(self) -> int:  # one past the last register
        return self.start + self.count


@dataclass
class PollGroup:
    interval_s: float
    blocks: list[Block]
    next_due: float = 0.0

    @property
    def points(self) -> list[PointSpec]:
        return [p for b in self.blocks for p in b.points]


def plan_blocks(points: list[PointSpec], max_block: int = 125, max_gap: int = 0) -> list[Block]:
    blocks: list[Block] = []
    by_table: dict[str, list[PointSpec]] = {}
    for p in points:
        addr = p.address
        assert isinstance(addr, ModbusAddress)
        by_table.setdefault(addr.table, []).append(p)
    for table in ("holding", "input", "coil", "discrete"):
        pts = sorted(by_table.get(table, []), key=lambda p: (p.address.register, p.address.count))  # type: ignore[union-attr]
        limit = MAX_BITS_PER_READ if table in ("coil", "discrete") else max_block
        current: Block | None = None
        for p in pts:
            addr = p.address
            assert isinstance(addr, ModbusAddress)
            start, end = addr.register, addr.register + addr.count
            if current is not None and start - current.end <= max_gap and max(end, current.end) - current.start <= limit:
                current.count = max(end, current.end) - current.start
                current.points.append(p)
                continue
            current = Block(table, start, end - start, [p])
            blocks.append(current)
    return blocks


def plan_groups(points: list[PointSpec], max_block: int = 125, max_gap: int = 0) -> list[PollGroup]:
    by_interval: dict[float, list[PointSpec]] = {}
    for p in points:
        by_interval.setdefault(p.poll_interval_s, []).append(p)
    return [PollGroup(interval, plan_blocks(pts, max_block, max_gap)) for interval, pts in sorted(by_interval.items())]


def split_block(block: Block) -> list[Block]:
    """One block per point (to find which point a device refuses)."""
    out = []
    for p in block.points:
        addr = p.address
        assert isinstance(addr, ModbusAddress)
        out.append(Block(block.table, addr.register, addr.count, [p]))
    return out
