"""Telemetry over the API: raw readings a page at a time (keyset cursor on time) and CSV
exports streamed in bounded memory (the rows as columns from api/telemetry_columns.py, written
by Arrow's CSV writer a group at a time). The bucketed series reuse ingest.timeseries.queries."""

from __future__ import annotations

import base64
import csv
import io
import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pyarrow as pa
from django.db import connection
from pyarrow import csv as pa_csv

from api.telemetry_columns import KeyColumn, iso_times, telemetry_columns
from ingest.timeseries.store import TABLE


def encode_cursor(ts: float) -> str:
    return base64.urlsafe_b64encode(repr(ts).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> float:
    """ValueError when it was not one of ours."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    value = float(raw)
    if not math.isfinite(value) or value <= 0:  # ours are the epoch seconds of a reading
        raise ValueError(f"not a cursor: {raw!r}")
    return value


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


CSV_HEADER = b"time,asset,metric,value\r\n"
CSV_GROUP_ROWS = 16384  # about 1 MB of CSV: smaller groups keep the process's memory flat, larger ones gain nothing


def csv_chunks(asset_ids: Sequence[int], start: datetime, end: datetime) -> Iterator[bytes]:
    """time,asset,metric,value rows of these assets in [start, end), ordered by time, as CSV
    byte chunks of CSV_GROUP_ROWS rows: never more than one in memory. Times are ISO 8601 UTC
    with microseconds; values the shortest text that reads back as the same float64."""
    yield CSV_HEADER
    if not asset_ids:
        return
    assets, metrics = KeyColumn.assets(asset_ids), KeyColumn.metrics(asset_ids)
    # Keys are letters, digits and _.- (twins.models.key_validator): written as they are, unless
    # a row that skipped validation holds a character CSV must quote.
    plain = not any(set(k) & set(',"\r\n') for k in assets.keys.to_pylist() + metrics.keys.to_pylist())
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none" if plain else "needed")
    for time_us, asset, metric, value in telemetry_columns(asset_ids, start, end, CSV_GROUP_ROWS):
        table = pa.table({"time": iso_times(time_us), "asset": assets.column(asset), "metric": metrics.column(metric), "value": pa.array(value, pa.float64())})
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(table, sink, options)
        yield sink.getvalue().to_pybytes()


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
