"""An export's telemetry as columns, a group of rows at a time, for the CSV and Parquet writers.

PostgreSQL sends the rows as binary COPY, without joins or formatting on the server; each row
of (timestamptz, int4, int4, float8) has the same 42 bytes, so numpy reads a whole group at once
(no Python work per reading). Asset and metric ids become their keys through an Arrow dictionary,
and times become ISO 8601 text by digit arithmetic on whole columns, both vectorised: formatting
a million times with PostgreSQL's to_char cost more than a second of the server's CPU, Arrow's
own timestamp formatting about as much in this process. SQLite (the embedded demo) goes through
fetchmany. Rows come ordered by time, asset, metric.
"""

from __future__ import annotations

import logging
import selectors
from collections.abc import Iterator, Sequence
from datetime import datetime

import numpy as np
import pyarrow as pa
from django.db import connection

from ingest.timeseries.store import TABLE
from twins.models import Asset, Metric

Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # time (Unix µs), asset id, metric id, value

# Binary COPY: a 19-byte header, then per row a field count and (length, value) per field, then -1.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00"
_COPY_HEADER_LEN = 19
log = logging.getLogger(__name__)

_ROW = np.dtype([("n", ">i2"), ("lt", ">i4"), ("t", ">i8"), ("la", ">i4"), ("a", ">i4"), ("lm", ">i4"), ("m", ">i4"), ("lv", ">i4"), ("v", ">f8")])
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds: PostgreSQL's timestamp zero


class ExportError(RuntimeError):
    """The database sent rows this reader does not understand (never expected: the columns are NOT NULL)."""


class KeyColumn:
    """id -> key for an export's assets (or metrics), as a dictionary lookup on whole columns."""

    def __init__(self, keys_by_id: dict[int, str]) -> None:
        self.ids = np.array(sorted(keys_by_id), dtype=np.int64)
        self.keys = pa.array([keys_by_id[i] for i in self.ids.tolist()], pa.string())

    @classmethod
    def assets(cls, asset_ids: Sequence[int]) -> KeyColumn:
        return cls(dict(Asset.objects.filter(id__in=list(asset_ids)).values_list("id", "key")))

    @classmethod
    def metrics(cls, asset_ids: Sequence[int]) -> KeyColumn:
        return cls(dict(Metric.objects.filter(asset_type__assets__id__in=list(asset_ids)).distinct().values_list("id", "key")))

    def column(self, ids: np.ndarray) -> pa.Array:
        index = np.searchsorted(self.ids, ids)
        if len(ids) and (index.max() >= len(self.ids) or not np.array_equal(self.ids[index], ids)):
            raise ExportError("a reading names an asset or metric that is not in the export")
        return pa.DictionaryArray.from_arrays(pa.array(index.astype(np.int32)), self.keys).cast(pa.string())


def telemetry_columns(asset_ids: Sequence[int], start: datetime, end: datetime, group_rows: int) -> Iterator[Columns]:
    """These assets' readings in [start, end) as columns of at most ``group_rows`` rows."""
    if not asset_ids:
        return iter(())
    if connection.vendor == "postgresql":
        return _pg_columns(asset_ids, start, end, group_rows)
    return _sqlite_columns(asset_ids, start, end, group_rows)


def _pg_columns(asset_ids: Sequence[int], start: datetime, end: datetime, group_rows: int) -> Iterator[Columns]:
    from psycopg import sql

    query = sql.SQL(
        "COPY (SELECT time, asset_id, metric_id, value FROM {table} WHERE asset_id IN ({ids}) AND time >= {start} AND time < {end} "
        "ORDER BY time, asset_id, metric_id) TO STDOUT (FORMAT binary)"
    ).format(table=sql.Identifier(TABLE), ids=sql.SQL(", ").join(sql.Literal(int(a)) for a in asset_ids), start=sql.Literal(start), end=sql.Literal(end))
    group_bytes = group_rows * _ROW.itemsize
    buffer = bytearray()
    header_seen = False
    for data in _copy_out(query, group_bytes):
        buffer += data
        if len(buffer) >= group_bytes + _COPY_HEADER_LEN:
            if not header_seen:
                _check_header(buffer)
                header_seen = True
            while len(buffer) >= group_bytes + 2:  # a whole group, and maybe the trailer after it
                columns = _decode_rows(buffer, group_rows)
                del buffer[:group_bytes]
                yield columns
    if not header_seen:
        _check_header(buffer)
    if buffer[-2:] == b"\xff\xff":  # the trailer (-1 as the field count)
        del buffer[-2:]
    if len(buffer) % _ROW.itemsize:
        raise ExportError(f"binary COPY ended inside a row ({len(buffer)} bytes left)")
    if buffer:
        yield _decode_rows(buffer, len(buffer) // _ROW.itemsize)


def _copy_out(query, chunk_bytes: int) -> Iterator[bytearray]:
    """The bytes of ``COPY ... TO STDOUT`` in chunks of about ``chunk_bytes``.

    PostgreSQL sends one message per row, and psycopg's Copy reads each through its generator
    and wait loop: about 0.56 s of this process's CPU per million rows, a third of the export's
    work. Read here with psycopg's libpq wrapper (psycopg.pq, its public low-level API) in
    non-blocking mode, waiting on the socket only when no row is buffered: 0.20 s per million
    (bench: /api/v1/exports/telemetry.csv, README). Stopped early (a client gone), the query is
    cancelled and its rest drained, so the connection is clean for the next request."""
    from psycopg import pq

    connection.ensure_connection()
    conn = connection.connection
    pgconn = conn.pgconn
    done = False
    with conn.lock, selectors.DefaultSelector() as selector:
        selector.register(pgconn.socket, selectors.EVENT_READ)
        pgconn.send_query(query.as_bytes(conn))
        try:
            result = _next_result(pgconn, selector)
            if result is None or result.status != pq.ExecStatus.COPY_OUT:
                raise ExportError(f"the export query failed: {_error_of(result)}")
            chunk = bytearray()
            while True:
                size, data = pgconn.get_copy_data(1)
                if size > 0:
                    chunk += data
                    if len(chunk) >= chunk_bytes:
                        yield chunk
                        chunk = bytearray()
                elif size == 0:
                    selector.select()
                    pgconn.consume_input()
                elif size == -1:
                    break
                else:
                    raise ExportError(f"reading the export failed: {pgconn.get_error_message().decode(errors='replace')}")
            result = _next_result(pgconn, selector)
            if result is None or result.status != pq.ExecStatus.COMMAND_OK:
                raise ExportError(f"the export query failed: {_error_of(result)}")
            while _next_result(pgconn, selector) is not None:
                pass
            done = True
            if chunk:
                yield chunk
        finally:
            if not done:
                _abandon(conn, pgconn, selector)


def _next_result(pgconn, selector):
    pgconn.consume_input()
    while pgconn.is_busy():
        selector.select()
        pgconn.consume_input()
    return pgconn.get_result()


def _error_of(result) -> str:
    return "no result" if result is None else (result.error_message.decode(errors="replace").strip() or str(result.status))


def _abandon(conn, pgconn, selector) -> None:
    """Cancel an unfinished COPY and read what is left, until the connection is idle again."""
    try:
        conn.cancel_safe()
        while True:
            size, _data = pgconn.get_copy_data(1)
            if size == 0:
                selector.select()
                pgconn.consume_input()
            elif size < 0:
                break
        while _next_result(pgconn, selector) is not None:
            pass
    except Exception:  # the connection is unusable: closed, Django opens a new one on next use
        log.warning("export: the abandoned COPY could not be drained; closing the database connection", exc_info=True)
        connection.close()


def _check_header(buffer: bytearray) -> None:
    if not buffer.startswith(_COPY_HEADER):
        raise ExportError("not a binary COPY stream")
    del buffer[:_COPY_HEADER_LEN]


def _decode_rows(raw: bytearray, count: int) -> Columns:
    """The first ``count`` rows of ``raw``, copied out into columns (``raw`` may change after)."""
    rows = np.frombuffer(raw, dtype=_ROW, count=count)
    if not (np.all(rows["n"] == 4) and np.all(rows["lt"] == 8) and np.all(rows["la"] == 4) and np.all(rows["lm"] == 4) and np.all(rows["lv"] == 8)):
        raise ExportError("binary COPY rows are not (timestamptz, int4, int4, float8)")
    return rows["t"].astype(np.int64) + _PG_EPOCH_US, rows["a"].astype(np.int64), rows["m"].astype(np.int64), rows["v"].astype(np.float64)


def _sqlite_columns(asset_ids: Sequence[int], start: datetime, end: datetime, group_rows: int) -> Iterator[Columns]:
    marks = ", ".join(["%s"] * len(asset_ids))
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT time, asset_id, metric_id, value FROM {TABLE} WHERE asset_id IN ({marks}) AND time >= %s AND time < %s ORDER BY time, asset_id, metric_id",
            [*asset_ids, start.timestamp(), end.timestamp()],
        )
        while rows := cur.fetchmany(group_rows):
            t, a, m, v = (np.array(c) for c in zip(*rows, strict=True))
            yield np.round(t.astype(np.float64) * 1e6).astype(np.int64), a.astype(np.int64), m.astype(np.int64), v.astype(np.float64)


_ISO_WIDTH = 27  # 2026-11-30T08:00:00.123456Z


def iso_times(time_us: np.ndarray) -> pa.Array:
    """Unix microseconds as ISO 8601 UTC text with microseconds ('2026-11-30T08:00:00.123456Z'),
    built digit by digit on whole columns; years outside 1000-9999 one by one."""
    n = len(time_us)
    stamps = time_us.astype("datetime64[us]")
    days = stamps.astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    years = months.astype("datetime64[Y]")
    year = years.astype(np.int64) + 1970
    if n and (year.min() < 1000 or year.max() > 9999):
        text = [np.datetime_as_string(s, unit="us") + "Z" for s in stamps]
        return pa.array(text, pa.string())
    month = (months - years).astype(np.int64) + 1
    day = (days - months).astype(np.int64) + 1
    in_day = (stamps - days).astype(np.int64)
    out = np.empty((n, _ISO_WIDTH), dtype=np.uint8)
    for col, width, values in ((0, 4, year), (5, 2, month), (8, 2, day), (11, 2, in_day // 3_600_000_000), (14, 2, in_day // 60_000_000 % 60),
                               (17, 2, in_day // 1_000_000 % 60), (20, 6, in_day % 1_000_000)):
        for k in range(width):
            out[:, col + width - 1 - k] = values // 10**k % 10 + 48
    for col, char in ((4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (19, "."), (26, "Z")):
        out[:, col] = ord(char)
    offsets = np.arange(0, (n + 1) * _ISO_WIDTH, _ISO_WIDTH, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out)])
