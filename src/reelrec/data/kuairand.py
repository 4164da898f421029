"""KuaiRand adapter: the official log and feature files of a KuaiRand folder, joined.

Files read (official names; CSV, or Parquet copies of the same files):
    log_standard_*.csv / log_standard_*.parquet     every one of them (a log dropped beside
        the others is picked up); a CSV and a Parquet with the same stem are one log, the
        Parquet copy is read.
    video_features_basic_*.csv (or .parquet)          exactly one
    user_features_*.csv (or .parquet)                 exactly one

Events (EVENT_SCHEMA) from the log:
    user_id <- user_id            item_id <- video_id          timestamp_ms <- time_ms
    hour <- hourmin // 100        tab <- tab                   watch_ms <- play_time_ms
    duration_ms <- duration_ms (0 = unknown: kept, noted)      is_share <- is_forward
    is_click, long_view, is_like, is_follow, is_comment, is_hate <- same names
The `date` column (YYYYMMDD, Beijing time) drives --start/--end and a per-row sanity window:
time_ms must lie within [UTC midnight of `date` - 14 h, + 38 h) (any time zone), else the
row is dead-lettered as timestamp_out_of_range; an impossible `date` is `bad_date`.
Other official columns (profile_stay_time, is_rand, ...) are not used but are kept in the
dead-letter rows. Observed in KuaiRand-Pure (kept as logged): `hourmin // 100` is one hour
later than the Beijing (UTC+8) hour of `time_ms` on about 17% of rows, and about 1% of rows
carry a `date` one day after the Beijing date of `time_ms` (up to ~2 h before midnight).
`hourmin` is always HH00 and is stamped some minutes after `time_ms`, later when the user
engaged: of the views that start 45-49 minutes past the hour, `hourmin` has already rolled
over on 29% of the long views and 16% of the others (is_like: 32% / 20%). So it carries a
little of the event's own outcome; the features take the hour from `time_ms`, never from
the `hour` column (see features/builder.py).

Items (ITEM_SCHEMA + extras) from video_features_basic:
    item_id <- video_id, author_id, duration_ms <- video_duration (null -> 0 = unknown),
    upload_ms <- upload_dt (UTC midnight; null/unparsable -> 0), music_id (null -> 0),
    tags <- tag "a,b" -> [a, b] (empty -> []), visible <- visible_status == 0 (a null status
    counts as visible: no moderation record). KuaiRand-Pure only holds visible_status 0.0.
    Extras (int64): video_type, upload_type (stable string codes, see codes.py), music_type
    (its integer value). Missing -> -1.
Users (USER_SCHEMA + extras): every profile column becomes an int64 column. Text fields
(user_active_degree, *_range) -> stable codes; the raw counts follow_user_num,
fans_user_num, friend_user_num, register_days -> `<name>_log2` = floor(log2(1 + n)); other
numeric fields (is_live_streamer, onehot_feat*) -> their integer value. Missing -> -1.
Feature rows with a null or repeated id are set aside (first kept) and counted in notes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reelrec.data.codes import int_codes, log2_bucket, stable_codes, tag_lists
from reelrec.data.dataset import Interactions
from reelrec.data.files import Col, Kind, read_checked
from reelrec.data.records import ITEM_SCHEMA, LABELS
from reelrec.data.validate import (
    DAY_MS,
    TS_OUT_OF_RANGE,
    RowRules,
    Staged,
    date_ints_to_ms,
    dedupe_ids,
    in_date_range,
    validate_events,
)
from reelrec.errors import DataError

KUAIRAND_LABELS: tuple[str, ...] = LABELS
LOG_PATTERN = "log_standard_*"
ITEM_PATTERN = "video_features_basic_*"
USER_PATTERN = "user_features_*"
BAD_DATE = "bad_date"

# official log column -> canonical event column
LOG_MAP: dict[str, str] = {
    "user_id": "user_id",
    "video_id": "item_id",
    "time_ms": "timestamp_ms",
    "tab": "tab",
    "play_time_ms": "watch_ms",
    "duration_ms": "duration_ms",
    "is_click": "is_click",
    "long_view": "long_view",
    "is_like": "is_like",
    "is_follow": "is_follow",
    "is_comment": "is_comment",
    "is_forward": "is_share",
    "is_hate": "is_hate",
}
LOG_COLS = [Col(name) for name in (*LOG_MAP, "date", "hourmin")]
ITEM_COLS = [
    Col("video_id"),
    Col("author_id"),
    Col("video_type", Kind.STR),
    Col("upload_dt", Kind.DATE),
    Col("upload_type", Kind.STR),
    Col("visible_status"),
    Col("video_duration"),
    Col("music_id"),
    Col("music_type", Kind.ANY),
    Col("tag", Kind.STR),
]
ITEM_TABLE_SCHEMA = pa.schema(
    [*ITEM_SCHEMA, *[(name, pa.int64()) for name in ("video_type", "upload_type", "music_type")]]
)
COUNT_FIELDS = ("follow_user_num", "fans_user_num", "friend_user_num", "register_days")
# read as text even when a small file holds only digits ("0"), so codes never depend on it
USER_TEXT_COLS = [
    Col(name, Kind.STR, required=False)
    for name in ("user_active_degree", *[f"{c}_range" for c in COUNT_FIELDS])
]
# window around the log's `date` in which time_ms must fall (covers every time zone)
WINDOW_BEFORE_MS = 14 * 3600 * 1000
WINDOW_AFTER_MS = DAY_MS + 14 * 3600 * 1000


def find_logs(folder: Path) -> list[Path]:
    """Every log_standard_* file, one per stem (Parquet preferred over CSV), sorted by name."""
    by_stem: dict[str, Path] = {}
    for suffix in (".csv", ".parquet"):  # parquet second: it replaces a CSV of the same stem
        for path in sorted(folder.glob(LOG_PATTERN + suffix)):
            by_stem[path.stem] = path
    if not by_stem:
        raise DataError(folder, f"no KuaiRand log: expected {LOG_PATTERN}.csv or .parquet")
    return [by_stem[stem] for stem in sorted(by_stem)]


def find_one(folder: Path, pattern: str) -> Path:
    """The single feature file matching `pattern` (.csv or a Parquet copy)."""
    logs = {p.stem: p for s in (".csv", ".parquet") for p in sorted(folder.glob(pattern + s))}
    if not logs:
        raise DataError(folder, f"missing file: expected {pattern}.csv")
    if len(logs) > 1:
        raise DataError(folder, f"several files match {pattern}: {', '.join(sorted(logs))}")
    return next(iter(logs.values()))


def load_kuairand(
    folder: Path, start: int | None = None, end: int | None = None, now_ms: int | None = None
) -> Interactions:
    """Load, join and validate a KuaiRand folder.

    Args:
        folder: a folder with the official KuaiRand files.
        start, end: YYYYMMDD bounds (inclusive) on the log's `date` column, or None.
        now_ms: "now" for the future-timestamp check (tests); None: the wall clock.

    Returns:
        Interactions with labels KUAIRAND_LABELS; rows_in counts log rows within the dates.
    """
    folder = Path(folder)
    if not folder.is_dir():
        found = "a file" if folder.exists() else "nothing"
        raise DataError(folder, f"expected a KuaiRand folder, found {found}")
    items, item_notes = _items(find_one(folder, ITEM_PATTERN))
    users, user_notes = _users(find_one(folder, USER_PATTERN))
    staged, outside = _stage_logs(find_logs(folder), start, end)
    rules = RowRules(now_ms=now_ms, item_ids=items["item_id"], user_ids=users["user_id"])
    events, dead = validate_events(staged, rules)
    dead.notes.update(item_notes)
    dead.notes.update(user_notes)
    return Interactions(
        events=events,
        items=items,
        users=users,
        labels=KUAIRAND_LABELS,
        source=str(folder),
        rows_in=staged.rows_in,
        dead=dead,
        rows_outside_dates=outside,
    )


def _stage_logs(paths: list[Path], start: int | None, end: int | None) -> tuple[Staged, int]:
    tables, sources, malformed = [], [], []
    outside = 0
    for i, path in enumerate(paths):
        bad_text: list[str] = []
        t = read_checked(path, LOG_COLS, keep_all=True, malformed=bad_text)
        malformed += [(str(path), text) for text in bad_text]
        date = t["date"]
        keep = in_date_range(pc.fill_null(date, 0).to_numpy(), start, end)
        keep |= pc.is_null(date).to_numpy(zero_copy_only=False)  # validated, not filtered
        if not keep.all():
            outside += int((~keep).sum())
            t = t.filter(pa.array(keep))
        tables.append(t)
        sources.append(np.full(t.num_rows, i, np.int32))
    raw = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    source = pa.DictionaryArray.from_arrays(
        pa.array(np.concatenate(sources)), pa.array([str(p) for p in paths])
    )
    cols = {canon: raw[name] for name, canon in LOG_MAP.items()}
    cols["hour"] = pc.floor(pc.divide(pc.cast(raw["hourmin"], pa.float64()), 100.0))
    events = pa.table(cols)
    midnight, date_ok = date_ints_to_ms(raw["date"])
    ts = pc.fill_null(pc.cast(raw["time_ms"], pa.float64()), 0).to_numpy(zero_copy_only=False)
    off = ts - midnight
    checks = [
        (BAD_DATE, ~date_ok),
        (TS_OUT_OF_RANGE, (off < -WINDOW_BEFORE_MS) | (off >= WINDOW_AFTER_MS)),
    ]
    return Staged(events, raw, source, checks=checks, malformed=malformed), outside


def _items(path: Path) -> tuple[pa.Table, dict[str, int]]:
    t, notes = dedupe_ids(read_checked(path, ITEM_COLS), "video_id", "items")
    upload = t["upload_dt"]
    if not (pa.types.is_date(upload.type) or pa.types.is_timestamp(upload.type)):
        upload = pc.strptime(pc.cast(upload, pa.string()), "%Y-%m-%d", "s", error_is_null=True)
    upload_ms = pc.cast(pc.cast(upload, pa.timestamp("ms")), pa.int64())
    status = t["visible_status"]
    music_type = t["music_type"]
    if pa.types.is_string(music_type.type):
        music_type = stable_codes(music_type)
    elif pa.types.is_floating(music_type.type) or pa.types.is_integer(music_type.type):
        music_type = int_codes(music_type)
    else:
        raise DataError(path, f"wrong type: expected numbers or text, found {music_type.type}",
                        "music_type")  # fmt: skip
    cols = {
        "item_id": t["video_id"],
        "author_id": int_codes(t["author_id"]),
        "duration_ms": pc.fill_null(pc.cast(t["video_duration"], pa.int64(), safe=False), 0),
        "upload_ms": pc.fill_null(upload_ms, 0),
        "music_id": pc.fill_null(pc.cast(t["music_id"], pa.int64(), safe=False), 0),
        "tags": tag_lists(t["tag"], ","),
        "visible": pc.fill_null(pc.equal(status, 0), True),
        "video_type": stable_codes(t["video_type"]),
        "upload_type": stable_codes(t["upload_type"]),
        "music_type": music_type,
    }
    return pa.table(cols, schema=ITEM_TABLE_SCHEMA), notes


def _users(path: Path) -> tuple[pa.Table, dict[str, int]]:
    t = read_checked(path, [Col("user_id"), *USER_TEXT_COLS], keep_all=True)
    t, notes = dedupe_ids(t, "user_id", "users")
    cols: dict[str, pa.Array | pa.ChunkedArray] = {"user_id": t["user_id"]}
    for name in t.column_names:
        if name == "user_id":
            continue
        col = t[name]
        if name in COUNT_FIELDS and not pa.types.is_string(col.type):
            cols[f"{name}_log2"] = log2_bucket(col)
        elif pa.types.is_string(col.type) or pa.types.is_dictionary(col.type):
            cols[name] = stable_codes(col)
        elif (
            pa.types.is_integer(col.type)
            or pa.types.is_floating(col.type)
            or pa.types.is_boolean(col.type)
        ):
            cols[name] = int_codes(col)
        else:  # dates or nested values: codes of their text form
            cols[name] = stable_codes(pc.cast(col, pa.string()))
    return pa.table(cols), notes
