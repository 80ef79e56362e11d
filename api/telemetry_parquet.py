"""Telemetry of some assets in a time range as a Parquet file, streamed a row group at a time.

The file is written into a sink that hands its bytes on after every row group
(ROW_GROUP_ROWS readings), so the response streams and memory stays bounded whatever the range
holds: one row group of columns plus what the writer keeps for the footer.

The rows come as columns from api/telemetry_columns.py (binary COPY read by numpy). Columns:
time (timestamp[us, UTC]), asset and metric (their keys, dictionary-encoded in the file), value
(float64); ordered by time, asset, metric like the CSV.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq

from api.telemetry_columns import KeyColumn, telemetry_columns

ROW_GROUP_ROWS = 65536
CONTENT_TYPE = "application/vnd.apache.parquet"
SCHEMA = pa.schema(
    [
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("asset", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)

class _Drain:
    """A write-only file for ParquetWriter whose bytes are taken out after each row group."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def parquet_chunks(asset_ids: Sequence[int], start: datetime, end: datetime) -> Iterator[bytes]:
    """The Parquet file of these assets' readings in [start, end), as byte chunks: one per row group."""
    assets, metrics = KeyColumn.assets(asset_ids), KeyColumn.metrics(asset_ids)
    sink = _Drain()
    writer = pq.ParquetWriter(sink, SCHEMA, compression="zstd")
    try:
        for time_us, asset, metric, value in telemetry_columns(asset_ids, start, end, ROW_GROUP_ROWS):
            table = pa.table(
                [pa.array(time_us, pa.int64()).cast(SCHEMA.field("time").type), assets.column(asset), metrics.column(metric), pa.array(value, pa.float64())],
                schema=SCHEMA,
            )
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            yield sink.take()
    finally:
        writer.close()
    yield sink.take()
