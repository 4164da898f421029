"""Row-level validation: every event row is either used or dead-lettered with one reason.

File-level problems stop earlier (`files.read_checked` raises `DataError`). Here each row of a
staged event table (canonical column names, loose numeric types, nulls allowed) is checked
column-wise with numpy; a row gets the FIRST reason that applies, in this order:

    null_value              a required column is null (or NaN)
    <adapter reasons>       e.g. bad_date, bad_rating (see the adapters)
    bad_id                  user_id / item_id negative or not an integer
    bad_context             tab < 0, or hour outside 0..23
    label_not_binary        a label column outside {0, 1}
    negative_watch_time     watch_ms < 0
    absurd_watch_time       watch_ms > records.MAX_WATCH_MS (6 h)
    negative_duration       duration_ms < 0
    absurd_duration         duration_ms > records.MAX_DURATION_MS
    timestamp_out_of_range  before the data's range (RowRules.min_timestamp_ms, or the
                            adapter's own window, e.g. KuaiRand's `date` column)
    timestamp_in_future     after now + RowRules.future_slack_ms
    unknown_item            item_id absent from the item feature file (when given)
    unknown_user            user_id absent from the user feature file (when given)
    malformed_row           a text row with the wrong number of fields (raw text kept)

Kept but noted (DeadLetters.notes): `duration_unknown` (duration_ms == 0 means unknown) and
`same_key_as_previous` (a row with the same (timestamp_ms, user_id, item_id) as another:
KuaiRand's own log holds such exact repeats; they are kept as logged).

Invariant: rows in == rows used + rows dead-lettered; `validate_events` checks it.
Used rows are cast to EVENT_SCHEMA (floats rounded) and sorted stably by
(timestamp_ms, user_id, item_id).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reelrec.data.dataset import DeadLetters
from reelrec.data.records import EVENT_SCHEMA, LABELS, MAX_DURATION_MS, MAX_WATCH_MS

NULL_VALUE = "null_value"
BAD_ID = "bad_id"
BAD_CONTEXT = "bad_context"
LABEL_NOT_BINARY = "label_not_binary"
NEGATIVE_WATCH = "negative_watch_time"
ABSURD_WATCH = "absurd_watch_time"
NEGATIVE_DURATION = "negative_duration"
ABSURD_DURATION = "absurd_duration"
TS_OUT_OF_RANGE = "timestamp_out_of_range"
TS_IN_FUTURE = "timestamp_in_future"
UNKNOWN_ITEM = "unknown_item"
UNKNOWN_USER = "unknown_user"
MALFORMED_ROW = "malformed_row"
NOTE_DURATION_UNKNOWN = "duration_unknown"
NOTE_REPEATED_KEY = "same_key_as_previous"

DAY_MS = 86_400_000


@dataclass(frozen=True)
class RowRules:
    """What a valid row looks like beyond the fixed checks.

    Attributes:
        min_timestamp_ms: earliest plausible event time (epoch ms).
        now_ms: "now" for the future check; None: the wall clock at validation time.
        future_slack_ms: clock skew tolerated before a timestamp counts as in the future.
        item_ids: known item ids (from the item feature file), or None: not checked.
        user_ids: known user ids (from the user feature file), or None: not checked.
        note_zero_duration: count rows with duration_ms == 0 as the note "duration_unknown"
            (off for sources that have no duration at all, like MovieLens).
    """

    min_timestamp_ms: int = 0
    now_ms: int | None = None
    future_slack_ms: int = DAY_MS
    item_ids: pa.Array | None = None
    user_ids: pa.Array | None = None
    note_zero_duration: bool = True


@dataclass
class Staged:
    """Event rows before validation, row-aligned with where they came from.

    Attributes:
        events: N rows with every EVENT_SCHEMA column name; int64 or float64, nulls allowed.
        original: N rows of the source columns as read (for the dead-letter file).
        source: N source file names (string or dictionary<string>).
        checks: adapter-specific (reason, bad) pairs, `bad` a bool array of shape (N,),
            applied right after the null check.
        malformed: (source, raw text) of text rows with the wrong number of fields.
    """

    events: pa.Table
    original: pa.Table
    source: pa.Array
    checks: list[tuple[str, np.ndarray]] = field(default_factory=list)
    malformed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def rows_in(self) -> int:
        return int(self.events.num_rows) + len(self.malformed)


def validate_events(staged: Staged, rules: RowRules) -> tuple[pa.Table, DeadLetters]:
    """Split staged rows into valid events (EVENT_SCHEMA, sorted) and dead letters.

    Returns:
        (events, dead) with rows_in == events.num_rows + dead.total.
    """
    ev = staged.events
    reasons = _Reasons(ev.num_rows)
    reasons.mark(NULL_VALUE, _null_mask(ev))
    for name, bad in staged.checks:
        reasons.mark(name, np.asarray(bad, bool))
    _fixed_checks(ev, rules, reasons)

    keep = reasons.code < 0
    events = _to_event_schema(ev if keep.all() else ev.filter(pa.array(keep)))
    order = sort_order(events)
    if order is not None:
        events = events.take(order)
    dead = DeadLetters(counts=reasons.counts())
    if (~keep).any():
        idx = np.flatnonzero(~keep)
        dead.rows = _dead_rows(
            staged.original.take(pa.array(idx)),
            pc.take(staged.source, pa.array(idx)),
            reasons.labels(idx),
        )
    if staged.malformed:
        dead.extend(_malformed_rows(staged.malformed))
    repeats = _repeated_keys(events)
    if repeats:
        dead.notes[NOTE_REPEATED_KEY] = repeats
    if rules.note_zero_duration:
        zero = int(pc.sum(pc.equal(events["duration_ms"], 0)).as_py() or 0)
        if zero:
            dead.notes[NOTE_DURATION_UNKNOWN] = zero
    if staged.rows_in != events.num_rows + dead.total:  # internal invariant, never user error
        raise AssertionError(f"rows lost: {staged.rows_in} != {events.num_rows} + {dead.total}")
    return events, dead


def sort_order(events: pa.Table) -> np.ndarray | None:
    """Stable order by (timestamp_ms, user_id, item_id); None when already in that order.

    Logs are nearly sorted by time, so a stable argsort of the timestamps is cheap
    (timsort); only rows that share a timestamp are then ordered by (user_id, item_id).
    A log far from time order goes to Arrow's (stable) multi-key sort directly.
    """
    ts = events["timestamp_ms"].to_numpy()
    if np.count_nonzero(ts[1:] < ts[:-1]) > len(ts) // 100:  # far from time order
        by = [("timestamp_ms", "ascending"), ("user_id", "ascending"), ("item_id", "ascending")]
        return np.asarray(pc.sort_indices(events, sort_keys=by).to_numpy())
    order = np.argsort(ts, kind="stable")
    s = ts[order]
    tie = s[1:] == s[:-1]
    if tie.any():
        in_tie = np.zeros(len(s), bool)
        in_tie[1:] |= tie
        in_tie[:-1] |= tie
        pos = np.flatnonzero(in_tie)
        sub = order[pos]
        uid, iid = events["user_id"].to_numpy(), events["item_id"].to_numpy()
        keys = pa.table({"t": s[pos], "u": uid[sub], "i": iid[sub]})
        by = [("t", "ascending"), ("u", "ascending"), ("i", "ascending")]
        order[pos] = sub[pc.sort_indices(keys, sort_keys=by).to_numpy()]  # stable
    if (order[1:] > order[:-1]).all():
        return None
    return order


def _repeated_keys(events: pa.Table) -> int:
    """Rows whose sort key equals the previous row's (the table is sorted by that key)."""
    if events.num_rows < 2:
        return 0
    same = np.ones(events.num_rows - 1, bool)
    for name in ("timestamp_ms", "user_id", "item_id"):
        x = events[name].to_numpy()
        same &= x[1:] == x[:-1]
    return int(same.sum())


class _Reasons:
    """First-reason-wins bookkeeping: code[i] is the index of row i's reason, -1 if none."""

    def __init__(self, n: int) -> None:
        self.code = np.full(n, -1, np.int16)
        self.names: list[str] = []

    def mark(self, name: str, bad: np.ndarray) -> None:
        if not bad.any():
            return
        if name not in self.names:
            self.names.append(name)
        self.code[bad & (self.code < 0)] = self.names.index(name)

    def labels(self, rows: np.ndarray) -> pa.Array:
        """The reason names of `rows`, as a string array (built columnar)."""
        codes = pa.array(self.code[rows].astype(np.int32))
        return pc.cast(pa.DictionaryArray.from_arrays(codes, pa.array(self.names)), pa.string())

    def counts(self) -> dict[str, int]:
        hist = np.bincount(self.code[self.code >= 0], minlength=len(self.names))
        return {name: int(n) for name, n in zip(self.names, hist, strict=True) if n}


def _null_mask(ev: pa.Table) -> np.ndarray:
    bad = np.zeros(ev.num_rows, bool)
    for col in ev.columns:
        if col.null_count:
            bad |= pc.is_null(col).to_numpy(zero_copy_only=False)
    return bad


def _np(ev: pa.Table, name: str) -> np.ndarray:
    """Column as numpy (nulls -> 0; null rows are already dead)."""
    col = ev[name]
    return np.asarray(pc.fill_null(col, 0).to_numpy() if col.null_count else col.to_numpy())


def _fixed_checks(ev: pa.Table, rules: RowRules, reasons: _Reasons) -> None:
    uid, iid = _np(ev, "user_id"), _np(ev, "item_id")
    bad_id = (uid < 0) | (iid < 0)
    if uid.dtype.kind == "f" or iid.dtype.kind == "f":
        bad_id |= (uid != np.round(uid)) | (iid != np.round(iid))
    reasons.mark(BAD_ID, bad_id)
    hour = _np(ev, "hour")
    reasons.mark(BAD_CONTEXT, (_np(ev, "tab") < 0) | (hour < 0) | (hour > 23))
    bad_label = np.zeros(ev.num_rows, bool)
    for label in LABELS:
        x = _np(ev, label)
        bad_label |= (x != 0) & (x != 1)
    reasons.mark(LABEL_NOT_BINARY, bad_label)
    watch = _np(ev, "watch_ms")
    reasons.mark(NEGATIVE_WATCH, watch < 0)
    reasons.mark(ABSURD_WATCH, watch > MAX_WATCH_MS)
    duration = _np(ev, "duration_ms")
    reasons.mark(NEGATIVE_DURATION, duration < 0)
    reasons.mark(ABSURD_DURATION, duration > MAX_DURATION_MS)
    ts = _np(ev, "timestamp_ms")
    reasons.mark(TS_OUT_OF_RANGE, ts < rules.min_timestamp_ms)
    now_ms = rules.now_ms if rules.now_ms is not None else int(time.time() * 1000)
    reasons.mark(TS_IN_FUTURE, ts > now_ms + rules.future_slack_ms)
    if rules.item_ids is not None:
        known = pc.is_in(ev["item_id"], value_set=_as_int64(rules.item_ids))
        reasons.mark(UNKNOWN_ITEM, ~known.to_numpy(zero_copy_only=False))
    if rules.user_ids is not None:
        known = pc.is_in(ev["user_id"], value_set=_as_int64(rules.user_ids))
        reasons.mark(UNKNOWN_USER, ~known.to_numpy(zero_copy_only=False))


def _as_int64(ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    return pc.cast(ids, pa.int64())


def _to_event_schema(ev: pa.Table) -> pa.Table:
    """Cast validated columns to EVENT_SCHEMA (floats rounded half to even)."""
    cols = []
    for f in EVENT_SCHEMA:
        col = ev[f.name]
        if pa.types.is_floating(col.type):
            col = pc.cast(pc.round(col), f.type, safe=False)
        elif col.type != f.type:
            col = pc.cast(col, f.type)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=EVENT_SCHEMA)


def _as_text(col: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    try:
        return pc.cast(col, pa.string())
    except pa.ArrowException:  # nested types: fall back to Python text, dead rows only
        return pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())


def _dead_rows(original: pa.Table, source: pa.Array, reasons: pa.Array) -> pa.Table:
    """Original values as text, plus the source file and the reason, one row per refusal."""
    cols = {name: _as_text(original[name]) for name in original.column_names}
    if pa.types.is_dictionary(source.type):
        source = source.dictionary_decode()
    cols["source"] = pc.cast(source, pa.string())
    cols["reason"] = reasons
    return pa.table(cols)


def _malformed_rows(rows: Sequence[tuple[str, str]]) -> DeadLetters:
    table = pa.table(
        {
            "raw_text": pa.array([text for _, text in rows], pa.string()),
            "source": pa.array([src for src, _ in rows], pa.string()),
            "reason": pa.array([MALFORMED_ROW] * len(rows), pa.string()),
        }
    )
    return DeadLetters(rows=table, counts={MALFORMED_ROW: len(rows)})


def date_ints_to_ms(dates: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """YYYYMMDD integers -> (UTC-midnight epoch ms of shape (N,), valid mask of shape (N,)).

    Vectorised with numpy datetime64; invalid calendar dates (20220230) and nulls are
    flagged invalid (their ms value is 0).
    """
    # a log spans few distinct dates: compute per distinct value, then gather
    if isinstance(dates, pa.ChunkedArray):
        dates = dates.combine_chunks()
    dates = pc.fill_null(pc.cast(dates, pa.float64()), -1)
    uniques = pc.unique(dates)
    if len(uniques) < len(dates) // 4:
        ms, ok = date_ints_to_ms(uniques)
        idx = pc.index_in(dates, value_set=uniques).to_numpy(zero_copy_only=False)
        return ms[idx], ok[idx]
    d = dates.to_numpy(zero_copy_only=False)
    d = np.where(np.isfinite(d) & (d == np.floor(d)), d, -1).astype(np.int64)
    y, m, day = d // 10000, (d // 100) % 100, d % 100
    ok = (y >= 1970) & (y <= 9999) & (m >= 1) & (m <= 12) & (day >= 1)
    month = ((np.where(ok, y, 1970) - 1970) * 12 + np.where(ok, m, 1) - 1).astype("datetime64[M]")
    first = month.astype("datetime64[D]")
    days_in_month = ((month + 1).astype("datetime64[D]") - first).astype(np.int64)
    ok &= day <= days_in_month
    ms = (first.astype(np.int64) + np.where(ok, day, 1) - 1) * DAY_MS
    return np.where(ok, ms, 0), ok


def parse_yyyymmdd(value: str) -> int | None:
    """'20220501' -> 20220501 if it is a real calendar date, else None."""
    if len(value) != 8 or not value.isdigit():
        return None
    _, ok = date_ints_to_ms(pa.array([int(value)], pa.int64()))
    return int(value) if bool(ok[0]) else None


def ms_to_date_ints(ms: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Epoch ms -> UTC calendar date as YYYYMMDD int64, shape (N,) (nulls -> 0)."""
    x = pc.fill_null(pc.cast(ms, pa.float64()), 0).to_numpy(zero_copy_only=False)
    days = np.floor(np.nan_to_num(x) / DAY_MS).astype(np.int64).astype("datetime64[D]")
    y = days.astype("datetime64[Y]").astype(np.int64) + 1970
    m = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    d = (days - days.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    return np.asarray(y * 10000 + m * 100 + d, np.int64)


def in_date_range(dates: np.ndarray, start: int | None, end: int | None) -> np.ndarray:
    """Bool mask of shape (N,): YYYYMMDD `dates` within [start, end] (inclusive)."""
    keep = np.ones(len(dates), bool)
    if start is not None:
        keep &= dates >= start
    if end is not None:
        keep &= dates <= end
    return keep


def dedupe_ids(table: pa.Table, key: str, kind: str) -> tuple[pa.Table, dict[str, int]]:
    """Feature-file rows: drop a null id and repeats of an id (first kept), counted as the
    notes "<kind>_null_id" / "<kind>_duplicate_id". `table[key]` is int64 or float64."""
    notes: dict[str, int] = {}
    ids = table[key]
    if ids.null_count:
        notes[f"{kind}_null_id"] = ids.null_count
        table = table.filter(pc.is_valid(ids))
    if pa.types.is_floating(table[key].type):
        table = table.set_column(
            table.column_names.index(key), key, pc.cast(table[key], pa.int64(), safe=False)
        )
    ids_np = table[key].to_numpy()
    _, first = np.unique(ids_np, return_index=True)
    if len(first) < len(ids_np):
        notes[f"{kind}_duplicate_id"] = len(ids_np) - len(first)
        table = table.take(pa.array(np.sort(first)))
    return table, notes
