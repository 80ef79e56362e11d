"""Telemetry over the API: raw readings a page at a time (keyset cursor on time) and CSV
exports streamed in constant memory (PostgreSQL: COPY ... TO STDOUT, passed through in
chunks; SQLite: fetchmany). The bucketed series reuse ingest.timeseries.queries."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from django.db import connection

from ingest.timeseries.store import TABLE

FETCH_ROWS = 20000


def encode_cursor(ts: float) -> str:
    return base64.urlsafe_b64encode(repr(ts).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> float:
    """ValueError when it was not one of ours."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    return float(raw)


def _sql_time(ts: float):
    return ts if connection.vendor == "sqlite" else datetime.fromtimestamp(ts, UTC)


def _epoch(value) -> float:
    return float(value) if connection.vendor == "sqlite" else value.timestamp()


def readings_page(asset_id: int, metric_id: int, start: datetime, end: datetime, after: float | None, limit: int) -> tuple[list[tuple[float, float]], str | None]:
    """[(epoch s, value)] oldest first after ``after``, and the cursor of the next page (None at the end)."""
    lo = max(start.timestamp(), after) if after is not None else start.timestamp()
    op = ">" if after is not None and after >= start.timestamp() else ">="
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT time, value FROM {TABLE} WHERE asset_id = %s AND metric_id = %s AND time {op} %s AND time < %s ORDER BY time LIMIT %s",
            [asset_id, metric_id, _sql_time(lo), _sql_time(end.timestamp()), limit + 1],
        )
        rows = [(_epoch(t), v) for t, v in cur.fetchall()]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1][0]) if more and rows else None


def csv_chunks(asset_ids: Sequence[int], start: datetime, end: datetime) -> Iterator[bytes]:
    """time,asset,metric,value rows of these assets in [start, end), ordered by time, as CSV
    byte chunks: never more than one chunk (about FETCH_ROWS rows) in memory."""
    yield b"time,asset,metric,value\r\n"
    if not asset_ids:
        return
    if connection.vendor == "postgresql":
        yield from _pg_copy(asset_ids, start, end)
    else:
        yield from _sqlite_rows(asset_ids, start, end)


def _pg_copy(asset_ids: Sequence[int], start: datetime, end: datetime) -> Iterator[bytes]:
    from psycopg import sql

    ids = sql.SQL(", ").join(sql.Literal(int(a)) for a in asset_ids)
    query = sql.SQL(
        "COPY (SELECT to_char(t.time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), a.key, m.key, t.value "
        "FROM {table} t JOIN twins_asset a ON a.id = t.asset_id JOIN twins_metric m ON m.id = t.metric_id "
        "WHERE t.asset_id IN ({ids}) AND t.time >= {start} AND t.time < {end} ORDER BY t.time, t.asset_id, t.metric_id) "
        "TO STDOUT WITH (FORMAT csv)"
    ).format(table=sql.Identifier(TABLE), ids=ids, start=sql.Literal(start), end=sql.Literal(end))
    connection.ensure_connection()
    buffer: list[bytes] = []
    size = 0
    with connection.connection.cursor() as cur, cur.copy(query) as copy:
        for data in copy:
            buffer.append(bytes(data))
            size += len(data)
            if size >= 1 << 20:
                yield b"".join(buffer)
                buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


def _sqlite_rows(asset_ids: Sequence[int], start: datetime, end: datetime) -> Iterator[bytes]:
    marks = ", ".join(["%s"] * len(asset_ids))
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT t.time, a.key, m.key, t.value FROM {TABLE} t JOIN twins_asset a ON a.id = t.asset_id JOIN twins_metric m ON m.id = t.metric_id "
            f"WHERE t.asset_id IN ({marks}) AND t.time >= %s AND t.time < %s ORDER BY t.time, t.asset_id, t.metric_id",
            [*asset_ids, start.timestamp(), end.timestamp()],
        )
        while rows := cur.fetchmany(FETCH_ROWS):
            out = io.StringIO()
            w = csv.writer(out)
            w.writerows((datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z"), a, m, v) for t, a, m, v in rows)
            yield out.getvalue().encode()


def queryset_csv(header: Sequence[str], rows: Iterator[Sequence]) -> Iterator[bytes]:
    """A CSV of any row iterator (alerts, audit), in chunks of 1,000 rows."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(header)
    n = 0
    for row in rows:
        w.writerow(row)
        n += 1
        if n % 1000 == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()
