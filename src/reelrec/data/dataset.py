"""`Interactions`: what every adapter returns, and the dead-letter record of what it refused."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from reelrec.data.records import EVENT_SCHEMA, ITEM_SCHEMA, USER_SCHEMA


class DatasetName(enum.StrEnum):
    sim = "sim"
    kuairand = "kuairand"
    movielens = "movielens"
    events = "events"


@dataclass
class DeadLetters:
    """Rows refused at row level, each with its reason; `counts` is reasons -> rows.

    `notes` counts rows that were kept but deserve a mention (e.g. "duration_unknown": an
    event whose item duration is 0), and feature-file rows set aside (e.g. a duplicate id);
    notes are not part of `total`.
    """

    rows: pa.Table | None = None  # original columns (as strings) + source + reason
    counts: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def extend(self, other: DeadLetters) -> None:
        for reason, n in other.counts.items():
            self.counts[reason] = self.counts.get(reason, 0) + n
        for note, n in other.notes.items():
            self.notes[note] = self.notes.get(note, 0) + n
        if other.rows is not None and other.rows.num_rows:
            self.rows = (
                other.rows
                if self.rows is None
                else pa.concat_tables([self.rows, other.rows], promote_options="permissive")
            )

    def write(self, path: Path) -> Path | None:
        """Write the refused rows as Parquet (atomically); None when there are none."""
        if self.rows is None or self.rows.num_rows == 0:
            return None
        from reelrec.store.atomic import atomic_write_parquet

        atomic_write_parquet(self.rows, path)
        return path


@dataclass
class Interactions:
    """Validated events (EVENT_SCHEMA, sorted by timestamp) with item and user tables.

    Invariant: rows_in == events.num_rows + dead.total. `rows_outside_dates` counts rows
    read but outside the requested --start/--end (not part of rows_in).
    """

    events: pa.Table
    items: pa.Table
    users: pa.Table
    labels: tuple[str, ...]
    source: str
    rows_in: int
    dead: DeadLetters = field(default_factory=DeadLetters)
    rows_outside_dates: int = 0

    def __post_init__(self) -> None:
        assert self.events.schema.equals(EVENT_SCHEMA), self.events.schema
        for name in ITEM_SCHEMA.names:
            assert name in self.items.column_names, name
        for name in USER_SCHEMA.names:
            assert name in self.users.column_names, name


def read_parquet_or_csv(path: Path) -> pa.Table:
    """Read one Parquet or CSV file into Arrow (multi-threaded, columnar)."""
    if path.suffix == ".parquet":
        return pq.read_table(path)
    from pyarrow import csv

    return csv.read_csv(path)
