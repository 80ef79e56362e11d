"""Telemetry of some assets in a time range as a Parquet file, streamed a row group at a time.

The file is written into a sink that hands its bytes on after every row group
(ROW_GROUP_ROWS readings), so the response streams and memory stays bounded whatever the range
holds: one row group of columns plus what the writer keeps for the footer.

PostgreSQL sends the rows as binary COPY; each row of (timestamptz, int4, int4, float8) has the
same 42 bytes, so numpy reads a whole row group at once (no Python work per reading) and the
asset and metric ids become their keys through a dictionary, vectorised. SQLite (the embedded
demo) goes through fetchmany. Columns: time (timestamp[us, UTC]), asset and metric (their keys,
dictionary-encoded in the file), value (float64); ordered by time, asset, metric like the CSV.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from django.db import connection

from ingest.timeseries.store import TABLE
from twins.models import Asset, Metric

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

# Binary COPY: a 19-byte header, then per row a field count and (length, value) per field, then -1.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00"
_COPY_HEADER_LEN = 19
_ROW = np.dtype([("n", ">i2"), ("lt", ">i4"), ("t", ">i8"), ("la", ">i4"), ("a", ">i4"), ("lm", ">i4"), ("m", ">i4"), ("lv", ">i4"), ("v", ">f8")])
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds: PostgreSQL's timestamp zero


class ParquetExportError(RuntimeError):
    """The database sent rows this reader does not understand (never expected: the columns are NOT NULL)."""


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


class _Keys:
    """id -> key for a set of rows, as a dictionary lookup on whole numpy columns."""

    def __init__(self, keys_by_id: dict[int, str]) -> None:
        self.ids = np.array(sorted(keys_by_id), dtype=np.int64)
        self.keys = pa.array([keys_by_id[i] for i in self.ids.tolist()], pa.string())

    def column(self, ids: np.ndarray) -> pa.Array:
        index = np.searchsorted(self.ids, ids)
        if len(ids) and (index.max() >= len(self.ids) or not np.array_equal(self.ids[index], ids)):
            raise ParquetExportError("a reading names an asset or metric that is not in the export")
        return pa.DictionaryArray.from_arrays(pa.array(index.astype(np.int32)), self.keys).cast(pa.string())


def parquet_chunks(asset_ids: Sequence[int], start: datetime, end: datetime) -> Iterator[bytes]:
    """The Parquet file of these assets' readings in [start, end), as byte chunks: one per row group."""
    assets = _Keys(dict(Asset.objects.filter(id__in=list(asset_ids)).values_list("id", "key")))
    metrics = _Keys(dict(Metric.objects.filter(asset_type__assets__id__in=list(asset_ids)).distinct().values_list("id", "key")))
    sink = _Drain()
    writer = pq.ParquetWriter(sink, SCHEMA, compression="zstd")
    try:
        columns = _pg_columns(asset_ids, start, end) if connection.vendor == "postgresql" else _sqlite_columns(asset_ids, start, end)
        for time_us, asset, metric, value in columns:
            table = pa.table(
                [pa.array(time_us, pa.int64()).cast(SCHEMA.field("time").type), assets.column(asset), metrics.column(metric), pa.array(value, pa.float64())],
                schema=SCHEMA,
            )
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            yield sink.take()
    finally:
        writer.close()
    yield sink.take()


Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # time (Unix µs), asset id, metric id, value


def _pg_columns(asset_ids: Sequence[int], start: datetime, end: datetime) -> Iterator[Columns]:
    from psycopg import sql

    query = sql.SQL(
        "COPY (SELECT time, asset_id, metric_id, value FROM {table} WHERE asset_id IN ({ids}) AND time >= {start} AND time < {end} "
        "ORDER BY time, asset_id, metric_id) TO STDOUT (FORMAT binary)"
    ).format(table=sql.Identifier(TABLE), ids=sql.SQL(", ").join(sql.Literal(int(a)) for a in asset_ids), start=sql.Literal(start), end=sql.Literal(end))
    group_bytes = ROW_GROUP_ROWS * _ROW.itemsize
    buffer = bytearray()
    header_seen = False
    connection.ensure_connection()
    with connection.connection.cursor() as cur, cur.copy(query) as copy:
        for data in copy:
            buffer += data
            if not header_seen and len(buffer) >= _COPY_HEADER_LEN:
                if not buffer.startswith(_COPY_HEADER):
                    raise ParquetExportError("not a binary COPY stream")
                del buffer[:_COPY_HEADER_LEN]
                header_seen = True
            if header_seen and len(buffer) >= group_bytes:
                yield _decode_rows(bytes(buffer[:group_bytes]))
                del buffer[:group_bytes]
    if buffer[-2:] == b"\xff\xff":  # the trailer (-1 as the field count)
        del buffer[-2:]
    if len(buffer) % _ROW.itemsize:
        raise ParquetExportError(f"binary COPY ended inside a row ({len(buffer)} bytes left)")
    if buffer:
        yield _decode_rows(bytes(buffer))


def _decode_rows(raw: bytes) -> Columns:
    rows = np.frombuffer(raw, dtype=_ROW)
    if not (np.all(rows["n"] == 4) and np.all(rows["lt"] == 8) and np.all(rows["la"] == 4) and np.all(rows["lm"] == 4) and np.all(rows["lv"] == 8)):
        raise ParquetExportError("binary COPY rows are not (timestamptz, int4, int4, float8)")
    return rows["t"].astype(np.int64) + _PG_EPOCH_US, rows["a"].astype(np.int64), rows["m"].astype(np.int64), rows["v"].astype(np.float64)


def _sqlite_columns(asset_ids: Sequence[int], start: datetime, end: datetime) -> Iterator[Columns]:
    marks = ", ".join(["%s"] * len(asset_ids))
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT time, asset_id, metric_id, value FROM {TABLE} WHERE asset_id IN ({marks}) AND time >= %s AND time < %s ORDER BY time, asset_id, metric_id",
            [*asset_ids, start.timestamp(), end.timestamp()],
        )
        while rows := cur.fetchmany(ROW_GROUP_ROWS):
            t, a, m, v = (np.array(c) for c in zip(*rows, strict=True))
            yield np.round(t.astype(np.float64) * 1e6).astype(np.int64), a.astype(np.int64), m.astype(np.int64), v.astype(np.float64)
