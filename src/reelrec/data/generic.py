"""Generic adapter: any Parquet or CSV event log, plus the canonical folder layout.

Canonical layout (written by `reelrec simulate`, read by `--dataset events` and `sim`):
    DIR/events.parquet    EVENT_SCHEMA (records.py)
    DIR/items.parquet     ITEM_SCHEMA, then extra int64 columns (optional file)
    DIR/users.parquet     USER_SCHEMA, then extra int64 columns (optional file)
`.csv` copies of the three files are read too (Parquet wins when both exist).

Your own log: point --data at the log file (or a folder holding `events.parquet|csv`) and,
when its column names differ from the canonical ones, put a `columns.json` beside it that
maps canonical name -> your column, plus an optional "timestamp_unit":

    {"user_id": "uid", "item_id": "video", "timestamp_ms": "ts", "timestamp_unit": "s",
     "watch_ms": "play_ms", "is_like": "liked"}

Keys are EVENT_SCHEMA names; "timestamp_unit" is one of "ms" (default), "s", "us", "ns"
(ignored when the column is a Parquet timestamp). user_id, item_id and timestamp_ms must
exist; the others default to: tab 0, hour = UTC hour of the timestamp, watch_ms 0,
duration_ms 0 (unknown), is_click 1 (a logged interaction), other labels 0. The dataset's
labels are the label columns the log actually has, in records.LABELS order.
Text ids ("u_81") become stable int64 codes (codes.py), the same in every run.

Items / users beside the log (`items.parquet|csv`, `users.parquet|csv`) use canonical column
names: items need item_id (others default: author_id 0, duration_ms 0, upload_ms 0,
music_id 0, tags [], visible True; tags are a list column or text "3,17" / "a|b"), users
need user_id. Any other column becomes an extra int64 column (text -> stable code, floats
truncated, missing -> -1). When the files are given, events with ids they lack are
dead-lettered (unknown_item / unknown_user); when not, they are built from the events.
--start/--end filter on the UTC date of the timestamp.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reelrec.data.codes import int_codes, stable_codes, tag_lists
from reelrec.data.dataset import Interactions
from reelrec.data.files import Col, Kind, read_checked
from reelrec.data.records import EVENT_SCHEMA, ITEM_SCHEMA, LABELS
from reelrec.data.validate import (
    RowRules,
    Staged,
    dedupe_ids,
    in_date_range,
    ms_to_date_ints,
    validate_events,
)
from reelrec.errors import DataError

MAPPING_FILE = "columns.json"
UNIT_KEY = "timestamp_unit"
UNIT_TO_MS = {"ms": 1.0, "s": 1000.0, "us": 1e-3, "ns": 1e-6}
REQUIRED = ("user_id", "item_id", "timestamp_ms")
DEFAULTS: dict[str, int] = {
    "tab": 0,
    "watch_ms": 0,
    "duration_ms": 0,
    **{label: 0 for label in LABELS},
    "is_click": 1,
}
ITEM_DEFAULTS: dict[str, int] = {"author_id": 0, "duration_ms": 0, "upload_ms": 0, "music_id": 0}


def load_events(
    path: Path,
    start: int | None = None,
    end: int | None = None,
    mapping: Mapping[str, str] | None = None,
    now_ms: int | None = None,
) -> Interactions:
    """Load and validate an event log (file or canonical folder) with optional items/users.

    Args:
        path: the log file, or a folder holding events.parquet (or events.csv).
        start, end: YYYYMMDD bounds (inclusive) on the UTC date of the event, or None.
        mapping: canonical name -> source column (and "timestamp_unit"); None: read
            `columns.json` beside the log if there is one, else canonical names.
        now_ms: "now" for the future-timestamp check (tests); None: the wall clock.
    """
    log = find_log(Path(path))
    folder = log.parent
    if mapping is None:
        mapping = read_mapping(folder / MAPPING_FILE)
    else:
        check_mapping(mapping, "mapping")
    items_path, users_path = _optional(folder, "items"), _optional(folder, "users")
    items, item_notes = read_items(items_path) if items_path else (None, {})
    users, user_notes = read_users(users_path) if users_path else (None, {})

    staged, labels, outside = _stage(log, mapping, start, end)
    rules = RowRules(
        now_ms=now_ms,
        item_ids=None if items is None else items["item_id"],
        user_ids=None if users is None else users["user_id"],
    )
    events, dead = validate_events(staged, rules)
    dead.notes.update(item_notes)
    dead.notes.update(user_notes)
    if items is None:
        items = _items_from_events(events)
    if users is None:
        users = pa.table({"user_id": pc.unique(events["user_id"])})
    return Interactions(
        events=events,
        items=items,
        users=users,
        labels=labels,
        source=str(log),
        rows_in=staged.rows_in,
        dead=dead,
        rows_outside_dates=outside,
    )


def find_log(path: Path) -> Path:
    """The event log: `path` itself, or events.parquet / events.csv inside a folder."""
    if not path.exists():
        raise DataError(path, "not found")
    if path.is_file():
        return path
    found = _optional(path, "events")
    if found is None:
        raise DataError(path, "missing file: expected events.parquet or events.csv")
    return found


def _optional(folder: Path, stem: str) -> Path | None:
    for suffix in (".parquet", ".csv"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def read_mapping(path: Path) -> dict[str, str]:
    """Read and check `columns.json`; {} when the file does not exist."""
    if not path.exists():
        return {}
    try:
        mapping = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, f"not valid JSON ({e})") from None
    check_mapping(mapping, path)
    return dict(mapping)


def check_mapping(mapping: object, where: object) -> None:
    """Keys must be EVENT_SCHEMA names or "timestamp_unit", values column names (text)."""
    if not isinstance(mapping, Mapping):
        raise DataError(where, "expected a JSON object: canonical name -> source column")
    for key, value in mapping.items():
        if key == UNIT_KEY:
            if value not in UNIT_TO_MS:
                raise DataError(where, f"timestamp_unit {value!r}: expected one of "
                                f"{', '.join(UNIT_TO_MS)}", UNIT_KEY)  # fmt: skip
        elif key not in EVENT_SCHEMA.names:
            raise DataError(where, f"unknown key: expected one of {', '.join(EVENT_SCHEMA.names)}"
                            f" or {UNIT_KEY}", key)  # fmt: skip
        elif not isinstance(value, str) or not value:
            raise DataError(where, f"expected a column name, got {value!r}", key)


def _stage(
    log: Path, mapping: Mapping[str, str], start: int | None, end: int | None
) -> tuple[Staged, tuple[str, ...], int]:
    src = {name: mapping.get(name, name) for name in EVENT_SCHEMA.names}
    cols = [
        Col(src["user_id"], Kind.ANY),
        Col(src["item_id"], Kind.ANY),
        Col(src["timestamp_ms"], Kind.TIME),
        *[Col(src[name], required=False) for name in EVENT_SCHEMA.names if name not in REQUIRED],
    ]
    bad_text: list[str] = []
    raw = read_checked(log, cols, keep_all=True, malformed=bad_text)
    ts = _timestamp_ms(log, raw[src["timestamp_ms"]], mapping.get(UNIT_KEY, "ms"))
    keep = in_date_range(ms_to_date_ints(ts), start, end) | pc.is_null(ts).to_numpy(
        zero_copy_only=False
    )
    outside = int((~keep).sum())
    if outside:
        raw, ts = raw.filter(pa.array(keep)), pc.filter(ts, pa.array(keep))
    n = raw.num_rows
    events: dict[str, pa.Array | pa.ChunkedArray] = {
        "user_id": _ids(log, src["user_id"], raw[src["user_id"]]),
        "item_id": _ids(log, src["item_id"], raw[src["item_id"]]),
        "timestamp_ms": ts,
    }
    for name in EVENT_SCHEMA.names[3:]:
        if src[name] in raw.column_names:
            events[name] = raw[src[name]]
        elif name == "hour":
            hours = pc.floor(pc.divide(pc.fill_null(ts, 0), 3_600_000.0)).to_numpy() % 24
            events[name] = pa.array(hours, pa.float64())
        else:
            events[name] = pa.array(np.full(n, DEFAULTS[name], np.int64))
    labels = tuple(label for label in LABELS if src[label] in raw.column_names)
    source = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([str(log)]))
    staged = Staged(
        pa.table(events), raw, source, malformed=[(str(log), text) for text in bad_text]
    )
    return staged, labels, outside


def _timestamp_ms(path: Path, col: pa.ChunkedArray, unit: str) -> pa.ChunkedArray:
    """Event times as epoch ms (float64 when scaled; nulls kept for the null check)."""
    if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
        return pc.cast(pc.cast(col, pa.timestamp("ms")), pa.int64())
    scale = UNIT_TO_MS[unit]
    return col if scale == 1.0 else pc.multiply(pc.cast(col, pa.float64()), scale)


def _ids(path: Path, name: str, col: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """Integer ids as they are; text ids -> stable codes (nulls kept null)."""
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return pc.if_else(pc.is_null(col), pa.scalar(None, pa.int64()), stable_codes(col))
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t):
        return col if pa.types.is_int64(t) or pa.types.is_floating(t) else pc.cast(col, pa.int64())
    raise DataError(path, f"wrong type: expected integer or text ids, found {t}", name)


def _dedupe(table: pa.Table, path: Path, key: str, kind: str) -> tuple[pa.Table, dict[str, int]]:
    ids = pc.cast(_ids(path, key, table[key]), pa.int64(), safe=False)
    return dedupe_ids(table.set_column(table.column_names.index(key), key, ids), key, kind)


def _extras(table: pa.Table, skip: set[str]) -> dict[str, pa.Array]:
    out = {}
    for name in table.column_names:
        if name in skip:
            continue
        col = table[name]
        out[name] = (
            int_codes(col)
            if pa.types.is_integer(col.type)
            or pa.types.is_floating(col.type)
            or pa.types.is_boolean(col.type)
            else stable_codes(pc.cast(col, pa.string()))
        )
    return out


def read_items(path: Path) -> tuple[pa.Table, dict[str, int]]:
    """An items file with canonical names -> (ITEM_SCHEMA + extra int64 columns, notes);
    one row per item_id, first kept."""
    cols = [
        Col("item_id", Kind.ANY),
        *[Col(name, required=False) for name in ITEM_DEFAULTS],
        Col("tags", Kind.ANY, required=False),
        Col("visible", Kind.ANY, required=False),
    ]
    t, notes = _dedupe(read_checked(path, cols, keep_all=True), path, "item_id", "items")
    n = t.num_rows
    out: dict[str, pa.Array | pa.ChunkedArray] = {"item_id": t["item_id"]}
    for name, default in ITEM_DEFAULTS.items():
        out[name] = (
            pc.fill_null(pc.cast(t[name], pa.int64(), safe=False), default)
            if name in t.column_names
            else pa.array(np.full(n, default, np.int64))
        )
    out["tags"] = (
        _tags(path, t["tags"]) if "tags" in t.column_names else tag_lists(pa.nulls(n, pa.string()))
    )
    out["visible"] = (
        _visible(path, t["visible"]) if "visible" in t.column_names else pa.array(np.ones(n, bool))
    )
    out.update(_extras(t, set(ITEM_SCHEMA.names)))
    return pa.table(out), notes


def _tags(path: Path, col: pa.ChunkedArray) -> pa.Array:
    t = col.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        values = pc.list_flatten(col)
        if not (pa.types.is_integer(values.type) or pa.types.is_null(values.type)):
            raise DataError(path, f"wrong type: expected a list of integers, found {t}", "tags")
        return pc.fill_null(pc.cast(col, pa.list_(pa.int64())), pa.scalar([], pa.list_(pa.int64())))
    return tag_lists(pc.cast(col, pa.string()))


def _visible(path: Path, col: pa.ChunkedArray) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_boolean(t):
        return pc.fill_null(col, True)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t):
        return pc.fill_null(pc.not_equal(col, 0), True)
    raise DataError(path, f"wrong type: expected true/false or 1/0, found {t}", "visible")


def read_users(path: Path) -> tuple[pa.Table, dict[str, int]]:
    """A users file with canonical names -> (USER_SCHEMA + extra int64 columns, notes)."""
    t = read_checked(path, [Col("user_id", Kind.ANY)], keep_all=True)
    t, notes = _dedupe(t, path, "user_id", "users")
    return pa.table({"user_id": t["user_id"], **_extras(t, {"user_id"})}), notes


def _items_from_events(events: pa.Table) -> pa.Table:
    """No items file: one row per item seen, with its longest logged duration."""
    g = events.group_by("item_id").aggregate([("duration_ms", "max")])
    n = g.num_rows
    zeros = pa.array(np.zeros(n, np.int64))
    cols = {
        "item_id": g["item_id"],
        "author_id": zeros,
        "duration_ms": g["duration_ms_max"],
        "upload_ms": zeros,
        "music_id": zeros,
        "tags": tag_lists(pa.nulls(n, pa.string())),
        "visible": pa.array(np.ones(n, bool)),
    }
    return pa.table(cols, schema=ITEM_SCHEMA)
