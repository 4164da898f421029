"""Embedded event log: an append-only SQLite database in WAL mode.

Every accepted event gets an offset (column `seq`, SQLite `INTEGER PRIMARY KEY
AUTOINCREMENT`), which is strictly increasing and never reused, even across processes
writing the same file and after rows are deleted. Consumers (the online trainer) remember
the last offset they processed and call `read(after_offset, limit)`; offsets are the stable
cursor, timestamps are not.

Durability: `synchronous=FULL` makes every commit fsync the WAL, so when `append` returns the
events survive a power cut. One POST is one transaction (one fsync), not one per event.

Refused events go to the `dead_letters` table with the reason and the raw JSON payload.
Author blocks (`POST /v1/blocks`) go to the `blocks` table: they outlive a restart and reach
every worker (serve/follow.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from reelrec.data.records import EVENT_SCHEMA, Event
from reelrec.errors import DataError

_COLUMNS = tuple(EVENT_SCHEMA.names)
_SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ms INTEGER NOT NULL,
    {", ".join(f"{c} INTEGER NOT NULL" for c in _COLUMNS)}
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ms INTEGER NOT NULL,
    batch_index INTEGER NOT NULL,
    reason TEXT NOT NULL,
    field TEXT,
    message TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blocks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ms INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    author_id INTEGER NOT NULL
);
"""
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class DeadLetter:
    """One refused event: its index in the POSTed batch, a reason code and a message."""

    index: int
    reason: str
    message: str
    payload: object
    field: str | None = None


@dataclass
class LogBatch:
    """What `read` returns: events (EVENT_SCHEMA) with their offsets (N,) int64."""

    offsets: np.ndarray
    events: pa.Table

    @property
    def next_offset(self) -> int | None:
        """The offset to pass as `after_offset` next time (None when the batch is empty)."""
        return int(self.offsets[-1]) if self.offsets.size else None


MAX_PAYLOAD_CHARS = 65_536


def _payload_json(payload: object) -> str:
    """The refused payload as JSON, cut to MAX_PAYLOAD_CHARS (the body limit bounds it too)."""
    return json.dumps(payload, default=repr)[:MAX_PAYLOAD_CHARS]


def event_row(event: Event) -> tuple[int, ...]:
    """One validated event as a row in EVENT_SCHEMA order. `hour` is the UTC hour."""
    values = event.model_dump()
    values["hour"] = (event.timestamp_ms // HOUR_MS) % 24
    return tuple(int(values[c]) for c in _COLUMNS)


class EventLog:
    """Append-only event log in one SQLite file (thread-safe; one writer lock per process).

    Example::

        log = EventLog(Path("events.sqlite"))
        first, last = log.append([Event(user_id=1, item_id=2, timestamp_ms=0)])
        batch = log.read(after_offset=0, limit=1000)
    """

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.is_file():
                raise DataError(self.path, "event log does not exist")
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._conn = sqlite3.connect(
                uri, uri=True, check_same_thread=False, isolation_level=None
            )
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
        self._lock = threading.Lock()
        self.closed = False
        try:
            if not readonly:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=FULL")
                self._conn.executescript(_SCHEMA_SQL)
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise DataError(self.path, f"not a reelrec event log ({e})") from e

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            self.closed = True

    # ------------------------------------------------------------------ writing
    def append(self, events: Sequence[Event]) -> tuple[int, int] | None:
        """Append validated events in one fsync'd transaction; (first, last) offset or None."""
        if not events:
            return None
        now = int(time.time() * 1000)
        rows = [(now, *event_row(e)) for e in events]
        placeholders = ", ".join("?" * (len(_COLUMNS) + 1))
        sql = f"INSERT INTO events (received_ms, {', '.join(_COLUMNS)}) VALUES ({placeholders})"
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(sql, rows)
                # BEGIN IMMEDIATE holds the write lock, so this batch got consecutive seqs.
                last = int(self._conn.execute("SELECT last_insert_rowid()").fetchone()[0])
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return last - len(rows) + 1, last

    def append_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Keep refused events (reason + raw payload) in the dead-letter table."""
        if not letters:
            return
        now = int(time.time() * 1000)
        rows = [
            (now, d.index, d.reason, d.field, d.message, _payload_json(d.payload)) for d in letters
        ]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT INTO dead_letters"
                    " (received_ms, batch_index, reason, field, message, payload)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def append_block(self, user_id: int, author_id: int) -> int:
        """Keep one author block (fsync'd); its id, increasing like the event offsets."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO blocks (received_ms, user_id, author_id) VALUES (?, ?, ?)",
                (int(time.time() * 1000), int(user_id), int(author_id)),
            )
        return int(cur.lastrowid or 0)

    # ------------------------------------------------------------------ reading
    def read_blocks(self, after_id: int = 0, limit: int = 10_000) -> np.ndarray:
        """Blocks with id > `after_id` in id order: (N, 3) int64 rows of id, user, author."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, user_id, author_id FROM blocks WHERE id > ? ORDER BY id LIMIT ?",
                (int(after_id), int(limit)),
            ).fetchall()
        return np.array(rows, dtype=np.int64).reshape(len(rows), 3)

    def read(self, after_offset: int = 0, limit: int = 10_000) -> LogBatch:
        """Events with offset > `after_offset`, in offset order, at most `limit` of them."""
        if limit < 1:
            raise ValueError(f"limit={limit}: must be >= 1")
        with self._lock:
            rows = self._conn.execute(
                f"SELECT seq, {', '.join(_COLUMNS)} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (int(after_offset), int(limit)),
            ).fetchall()
        data = np.array(rows, dtype=np.int64).reshape(len(rows), len(_COLUMNS) + 1)
        arrays = [
            pa.array(data[:, i + 1], type=EVENT_SCHEMA.field(c).type)
            for i, c in enumerate(_COLUMNS)
        ]
        return LogBatch(
            offsets=data[:, 0].copy(), events=pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)
        )

    def last_offset(self) -> int:
        """The highest offset written so far (0 for an empty log)."""
        with self._lock:
            row = self._conn.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def dead_letters(self, limit: int = 1000) -> list[dict[str, object]]:
        """The newest refused events, newest first (reason, message, raw payload)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, received_ms, batch_index, reason, field, message, payload"
                " FROM dead_letters"
                " ORDER BY id DESC LIMIT ?",
                (int(limit),),
            ).fetchall()
        keys = ("id", "received_ms", "batch_index", "reason", "field", "message", "payload")
        return [dict(zip(keys, r, strict=True)) for r in rows]
