"""Statements under each database's parameter limit.

A batch of 500 messages can hold tens of thousands of distinct (asset, metric) keys; one
multi-row statement for all of them passes SQLite's limit on bound variables (32,766 in
current builds, 999 in old ones) and PostgreSQL's 65,535, and the error it raises is an
OperationalError that looks like an outage. So every multi-row statement goes in chunks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

POSTGRES_MAX_PARAMS = 65535
SQLITE_DEFAULT_MAX_PARAMS = 999
HEADROOM = 16  # parameters a statement may add besides its rows


def max_params(connection) -> int:
    if connection.vendor != "sqlite":
        return POSTGRES_MAX_PARAMS
    connection.ensure_connection()
    getlimit = getattr(connection.connection, "getlimit", None)  # Python 3.11+
    return getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit else SQLITE_DEFAULT_MAX_PARAMS


def chunked(items: Sequence[T], params_per_item: int, connection) -> Iterator[Sequence[T]]:
    """``items`` in slices whose statements stay under the connection's parameter limit."""
    size = max(1, (max_params(connection) - HEADROOM) // max(1, params_per_item))
    for start in range(0, len(items), size):
        yield items[start : start + size]
