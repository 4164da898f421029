"""Event log consumers: SQLite and Redis Streams behind one interface."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelrec.data.records import Event
from reelrec.errors import ConfigError, DataError
from reelrec.online.log import (
    RedisStreamLog,
    SqliteSource,
    offset_of_stream_id,
    open_source,
    stream_id_of_offset,
)
from reelrec.serve.eventlog import EventLog


def test_sqlite_source_reads_in_offset_order(live_events: list[Event], tmp_path: Path) -> None:
    log = EventLog(tmp_path / "e.sqlite")
    log.append(live_events[:30])
    src = open_source(str(tmp_path / "e.sqlite"))
    assert isinstance(src, SqliteSource)
    first = src.read(0, 20)
    rest = src.read(int(first.offsets[-1]), 100)
    assert first.offsets.tolist() == list(range(1, 21)), (first.offsets, src.last_offset())
    assert rest.offsets.tolist() == list(range(21, 31))
    assert rest.events.column("item_id").to_pylist() == [e.item_id for e in live_events[20:30]]
    assert src.last_offset() == 30


def test_open_source_missing_log_fails(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        open_source(str(tmp_path / "nope.sqlite"))


def test_open_source_unknown_scheme_fails() -> None:
    with pytest.raises(ConfigError, match="--events"):
        open_source("kafka://broker:9092")


def test_stream_id_offset_round_trip() -> None:
    for sid in ("0-1", "1709597249140-0", "1709597249140-1048575"):
        assert stream_id_of_offset(offset_of_stream_id(sid)) == sid
    assert offset_of_stream_id("5-0") > offset_of_stream_id("4-1048575")


def test_stream_id_with_huge_sequence_fails() -> None:
    with pytest.raises(DataError, match="sequence"):
        offset_of_stream_id("5-1048576")


def _redis_log(url: str, stream: str) -> RedisStreamLog:
    src = open_source(f"{url}?stream={stream}&group=g")
    assert isinstance(src, RedisStreamLog)
    return src


def test_redis_append_read_commit_and_reposition(redis_url: str, live_events: list[Event]) -> None:
    log = _redis_log(redis_url, "t-basic")
    first, last = log.append(live_events[:25]) or (0, 0)
    assert first < last == log.last_offset()
    batch = log.read(0, 10)
    assert batch.events.num_rows == 10 and batch.offsets[0] == first
    assert batch.events.column("user_id").to_pylist() == [e.user_id for e in live_events[:10]]
    more = log.read(int(batch.offsets[-1]), 100)
    assert more.events.num_rows == 15
    assert log.pending() == 25
    log.commit(int(batch.offsets[-1]))  # XACK the first 10 only
    assert log.pending() == 15
    # A restarted consumer repositions the group at its committed offset: nothing is lost.
    again = _redis_log(redis_url, "t-basic")
    redo = again.read(int(batch.offsets[-1]), 100)
    assert redo.offsets.tolist() == more.offsets.tolist()
