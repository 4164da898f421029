"""Event log, consumer side: read events by offset, in order, in batches.

Two backends behind one `EventSource` protocol:

- `SqliteSource`: the feed server's embedded SQLite WAL log (`reelrec.serve.eventlog`), opened
  read-only; offsets are its `seq` column (1, 2, 3, ... contiguous).
- `RedisStreamLog`: a Redis Stream shared by several servers (XADD) and trainers (consumer
  groups: XGROUP / XREADGROUP / XACK). A stream id `ms-seq` maps to the integer offset
  `ms << 20 | seq`, which keeps the stream's order and fits int64 for the next 17 000 years.

The consumer's committed offset lives in the model store, next to the model that learned up to
it (see `reelrec.online.publish`), not in the log: that is what makes a crash lose and repeat
nothing. A backend's own bookkeeping (the consumer group's last delivered id, its pending
entries) follows that offset: `read(after)` repositions the group when `after` is not where it
stands, and `commit(offset)` acknowledges (XACK) what the published model holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

import numpy as np
import pyarrow as pa

from reelrec.data.records import EVENT_SCHEMA, Event
from reelrec.errors import ConfigError, DataError
from reelrec.serve.eventlog import EventLog, LogBatch, event_row

__all__ = [
    "EventSource",
    "LogBatch",
    "RedisStreamLog",
    "SqliteSource",
    "offset_of_stream_id",
    "open_source",
    "stream_id_of_offset",
]

_COLUMNS = tuple(EVENT_SCHEMA.names)
SEQ_BITS = 20  # stream id sequence numbers below 2**20 per millisecond


class EventSource(Protocol):
    """What the online trainer consumes: ordered events with increasing int offsets."""

    def read(self, after_offset: int, limit: int) -> LogBatch:
        """Events with offset > after_offset, in offset order, at most `limit`."""
        ...

    def last_offset(self) -> int:
        """The highest offset written so far (0 when empty)."""
        ...

    def commit(self, offset: int) -> None:
        """Everything up to `offset` is durably learned (a published version holds it)."""
        ...

    def close(self) -> None: ...


class SqliteSource:
    """The server's SQLite event log, read-only (the server is the only writer)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._log = EventLog(self.path, readonly=True)

    def read(self, after_offset: int, limit: int) -> LogBatch:
        return self._log.read(after_offset, limit)

    def last_offset(self) -> int:
        return self._log.last_offset()

    def commit(self, offset: int) -> None:
        """Nothing to do: SQLite keeps every event; the offset lives in the model store."""

    def close(self) -> None:
        self._log.close()


def stream_id_of_offset(offset: int) -> str:
    return f"{offset >> SEQ_BITS}-{offset & ((1 << SEQ_BITS) - 1)}"


def offset_of_stream_id(stream_id: bytes | str) -> int:
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    ms, _, seq = text.partition("-")
    if int(seq) >= 1 << SEQ_BITS:
        raise DataError("redis stream", f"id {text}: sequence >= 2**{SEQ_BITS}")
    return (int(ms) << SEQ_BITS) | int(seq)


class RedisStreamLog:
    """Events in a Redis Stream: servers `append` (XADD), trainers `read` through a consumer
    group (XREADGROUP) and `commit` (XACK).

    Args:
        client: a `redis.Redis` (bytes responses).
        stream: the stream key.
        group: the consumer group (one per trainer fleet); created on first use.
        consumer: this consumer's name inside the group.

    Example::

        log = RedisStreamLog(redis.Redis(port=6379), "reelrec:events")
        log.append([Event(user_id=1, item_id=2, timestamp_ms=0)])
        batch = log.read(after_offset=0, limit=1000)
        log.commit(batch.next_offset)
    """

    def __init__(
        self, client: Any, stream: str, group: str = "trainer", consumer: str = "trainer-0"
    ) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self._position: int | None = None  # the group's last delivered offset, as we know it
        self._delivered: list[bytes] = []  # ids read but not acknowledged yet

    # ------------------------------------------------------------------ writing
    def append(self, events: Sequence[Event] | pa.Table) -> tuple[int, int] | None:
        """XADD each event (one pipelined round trip); (first, last) offset or None."""
        rows = (
            [tuple(r.values()) for r in events.select(list(_COLUMNS)).to_pylist()]
            if isinstance(events, pa.Table)
            else [event_row(e) for e in events]
        )
        if not rows:
            return None
        pipe = self.client.pipeline(transaction=False)
        for row in rows:
            pipe.xadd(self.stream, dict(zip(_COLUMNS, row, strict=True)))
        ids = pipe.execute()
        return offset_of_stream_id(ids[0]), offset_of_stream_id(ids[-1])

    # ------------------------------------------------------------------ reading
    def _position_group(self, after_offset: int) -> None:
        """Create the group, or move its last-delivered id, to `after_offset`."""
        import redis

        start = stream_id_of_offset(after_offset)
        try:
            self.client.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
            self.client.xgroup_setid(self.stream, self.group, id=start)
        self._delivered.clear()
        self._position = after_offset

    def read(self, after_offset: int, limit: int) -> LogBatch:
        if limit < 1:
            raise ValueError(f"limit={limit}: must be >= 1")
        if self._position != after_offset:
            self._position_group(after_offset)
        reply = self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=limit)
        entries = reply[0][1] if reply else []
        n = len(entries)
        data = np.zeros((n, len(_COLUMNS)), np.int64)
        offsets = np.empty(n, np.int64)
        for i, (sid, fields) in enumerate(entries):
            offsets[i] = offset_of_stream_id(sid)
            data[i] = [int(fields[c.encode()]) for c in _COLUMNS]
            self._delivered.append(sid)
        if n:
            self._position = int(offsets[-1])
        arrays = [
            pa.array(data[:, i], type=EVENT_SCHEMA.field(c).type) for i, c in enumerate(_COLUMNS)
        ]
        return LogBatch(offsets=offsets, events=pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA))

    def last_offset(self) -> int:
        last = self.client.xrevrange(self.stream, count=1)
        return offset_of_stream_id(last[0][0]) if last else 0

    def commit(self, offset: int) -> None:
        """XACK the delivered entries up to `offset` (they leave the group's pending list)."""
        done = [s for s in self._delivered if offset_of_stream_id(s) <= offset]
        if done:
            self.client.xack(self.stream, self.group, *done)
            self._delivered = self._delivered[len(done) :]

    def pending(self) -> int:
        """Entries delivered to the group and not acknowledged yet."""
        return int(self.client.xpending(self.stream, self.group)["pending"])

    def close(self) -> None:
        self.client.close()


def open_source(url: str, consumer: str = "trainer-0") -> EventSource | RedisStreamLog:
    """`--events URL`: a SQLite log path (or sqlite:///PATH), or
    redis://HOST:PORT/DB?stream=KEY&group=NAME (defaults: stream reelrec:events, group trainer).
    """
    parsed = urlparse(url)
    if parsed.scheme in ("redis", "rediss"):
        import redis

        query = parse_qs(parsed.query)
        stream = query.get("stream", ["reelrec:events"])[0]
        group = query.get("group", ["trainer"])[0]
        base = url.split("?", 1)[0]
        return RedisStreamLog(redis.Redis.from_url(base), stream, group, consumer)
    if parsed.scheme in ("", "sqlite", "file"):
        path = Path(parsed.path if parsed.scheme else url)
        if not path.is_file():
            raise DataError(path, "event log does not exist (start the server first?)")
        return SqliteSource(path)
    raise ConfigError(
        f"--events {url!r}: expected a SQLite file path, sqlite:///PATH or redis://HOST:PORT/DB"
    )
