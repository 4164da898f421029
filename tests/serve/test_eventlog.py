"""Event log: offsets, durability settings, reads in order, dead letters."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from reelrec.data.records import EVENT_SCHEMA, Event
from reelrec.errors import DataError
from reelrec.serve.eventlog import DeadLetter, EventLog


def _events(n: int, user: int = 1) -> list[Event]:
    return [
        Event(user_id=user, item_id=100 + i, timestamp_ms=3_600_000 * (i + 5), watch_ms=i)
        for i in range(n)
    ]


def test_append_returns_consecutive_monotonic_offsets(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "ev.sqlite")
    assert log.append([]) is None
    assert log.append(_events(3)) == (1, 3)
    assert log.append(_events(2)) == (4, 5)
    assert log.last_offset() == 5 and log.count() == 5


def test_wal_and_full_sync_are_on(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "ev.sqlite")
    assert log._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert log._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_read_after_offset_pages_in_order(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "ev.sqlite")
    log.append(_events(5))
    first = log.read(after_offset=0, limit=2)
    assert first.offsets.tolist() == [1, 2] and first.next_offset == 2
    assert first.events.schema.equals(EVENT_SCHEMA)
    rest = log.read(after_offset=first.next_offset or 0, limit=100)
    assert rest.offsets.tolist() == [3, 4, 5]
    assert rest.events.column("item_id").to_pylist() == [102, 103, 104]
    assert rest.events.column("hour").to_pylist() == [7, 8, 9]  # UTC hour of timestamp_ms
    assert rest.events.column("watch_ms").to_pylist() == [2, 3, 4]
    empty = log.read(after_offset=5)
    assert empty.offsets.size == 0 and empty.next_offset is None and empty.events.num_rows == 0


def test_offsets_survive_reopen_and_deletes(tmp_path: Path) -> None:
    path = tmp_path / "ev.sqlite"
    log = EventLog(path)
    log.append(_events(3))
    log._conn.execute("DELETE FROM events WHERE seq = 3")  # e.g. a retention job
    log.close()
    assert EventLog(path).append(_events(1)) == (4, 4)  # never reused


def test_other_process_sees_committed_events(tmp_path: Path) -> None:
    path = tmp_path / "ev.sqlite"
    EventLog(path).append(_events(4))
    code = (
        "from reelrec.serve.eventlog import EventLog; "
        f"print(EventLog({str(path)!r}, readonly=True).read(0, 10).offsets.tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[1, 2, 3, 4]"


def test_dead_letters_are_kept(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "ev.sqlite")
    log.append_dead(
        [DeadLetter(2, "int_type", "events[2].user_id: bad", {"user_id": "x"}, "user_id")]
    )
    (row,) = log.dead_letters()
    assert row["batch_index"] == 2 and row["reason"] == "int_type" and row["field"] == "user_id"
    assert row["payload"] == '{"user_id": "x"}'
    assert log.count() == 0


def test_read_limit_zero_fails(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="limit"):
        EventLog(tmp_path / "ev.sqlite").read(0, limit=0)


def test_readonly_missing_log_fails(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        EventLog(tmp_path / "nope.sqlite", readonly=True)


def test_not_a_database_fails(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DataError, match="not a reelrec event log"):
        EventLog(path)
    assert isinstance(sqlite3.sqlite_version, str)
