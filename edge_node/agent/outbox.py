"""On-disk store-and-forward buffer (SQLite) with persistent sequence counters.

Every batch and event is first written here, in the same transaction that advances its
channel's ``seq`` counter; a sender drains rows in insertion order and deletes a row only
when the platform confirmed it stored it (``confirm``; or, in ``delivery = "broker"`` mode,
when the broker acknowledged it). So readings survive a broker crash, an ingest outage and an
agent crash, and ``seq`` keeps increasing across restarts. When the buffer passes its bounds
(bytes or rows), the oldest rows are dropped and counted (``dropped``), never silently.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    seq INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_channel_seq ON outbox (channel, seq);
"""


class OutboxRow(NamedTuple):
    id: int
    channel: str
    seq: int
    payload: bytes


class Outbox:
    def __init__(self, path: str | Path, max_bytes: int, max_rows: int) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self.max_rows = int(max_rows)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        # WAL + synchronous=NORMAL: a commit survives a process crash (SIGKILL) without an
        # fsync per batch; only a power loss may lose the last few commits.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        rows, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
        self._rows = int(rows)
        self._bytes = int(size)
        self._dropped = self._counter("dropped")

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    # -- writing ---------------------------------------------------------------
    def put(self, channel: str, build: Callable[[int], bytes]) -> int:
        """Append one message; ``build(seq)`` returns its encoded payload. Returns the seq."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                seq = self._counter(f"seq:{channel}") + 1
                payload = build(seq)
                db.execute("INSERT INTO outbox (channel, seq, payload) VALUES (?, ?, ?)", (channel, seq, payload))
                db.execute(
                    "INSERT INTO counters (name, value) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                    (f"seq:{channel}", seq),
                )
                self._rows += 1
                self._bytes += len(payload)
                self._enforce_bounds()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                self._reload_totals()
                raise
            return seq

    def _enforce_bounds(self) -> None:
        if self._rows <= self.max_rows and self._bytes <= self.max_bytes:
            return
        dropped = 0
        while self._rows > 1 and (self._rows > self.max_rows or self._bytes > self.max_bytes):
            # Drop the oldest rows in chunks; never the message just written.
            victims = self._db.execute(
                "SELECT id, LENGTH(payload) FROM outbox ORDER BY id LIMIT ?",
                (max(1, min(self._rows - 1, self._rows - self.max_rows, 100)),),
            ).fetchall()
            if not victims:
                break
            self._db.execute("DELETE FROM outbox WHERE id <= ?", (victims[-1][0],))
            self._rows -= len(victims)
            self._bytes -= sum(v[1] for v in victims)
            dropped += len(victims)
        if dropped:
            self._dropped += dropped
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES ('dropped', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (self._dropped,),
            )
            log.warning("outbox %s full: dropped the %d oldest message(s) (%d dropped in total)",
                        self.path, dropped, self._dropped)

    def _reload_totals(self) -> None:
        rows, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
        self._rows, self._bytes = int(rows), int(size)

    # -- draining --------------------------------------------------------------
    def peek(self, after_id: int, limit: int) -> list[OutboxRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, channel, seq, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            ).fetchall()
        return [OutboxRow(int(r[0]), r[1], int(r[2]), bytes(r[3])) for r in rows]

    def delete(self, ids: Iterable[int]) -> int:
        ids = list(ids)
        if not ids:
            return 0
        with self._lock:
            marks = ",".join("?" * len(ids))
            size = self._db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox WHERE id IN ({marks})", ids
            ).fetchone()
            self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", ids)
            self._rows -= int(size[0])
            self._bytes -= int(size[1])
            return int(size[0])

    def confirm(self, channel: str, ranges: Iterable[tuple[int, int]]) -> list[int]:
        """Delete the rows of ``channel`` whose seq lies in one of the inclusive ``ranges``
        (the platform has them); return their ids."""
        deleted: list[int] = []
        with self._lock:
            for first, last in ranges:
                rows = self._db.execute(
                    "SELECT id, LENGTH(payload) FROM outbox WHERE channel = ? AND seq BETWEEN ? AND ?",
                    (channel, first, last),
                ).fetchall()
                if not rows:
                    continue
                self._db.execute("DELETE FROM outbox WHERE channel = ? AND seq BETWEEN ? AND ?", (channel, first, last))
                self._rows -= len(rows)
                self._bytes -= sum(int(r[1]) for r in rows)
                deleted.extend(int(r[0]) for r in rows)
        return deleted

    # -- figures ---------------------------------------------------------------
    @property
    def depth(self) -> int:
        return self._rows

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def dropped(self) -> int:
        return self._dropped

    def last_seq(self, channel: str) -> int:
        with self._lock:
            return self._counter(f"seq:{channel}")

    def close(self) -> None:
        with self._lock:
            self._db.close()
