"""MovieLens adapter: ml-latest(-small) (`ratings.csv`, `movies.csv`) or ml-100k (`u.data`,
`u.item`, optional `u.user`), detected by which files the folder holds.

A rating is an explicit, deliberate interaction, so every rating row becomes an event:
    user_id <- userId / user id        item_id <- movieId / item id
    timestamp_ms <- timestamp (seconds) * 1000      hour <- UTC hour of the timestamp
    tab 0, watch_ms 0, duration_ms 0 (MovieLens has no watch data; no duration note)
    is_click 1 (the user chose to rate the film)
    long_view <- rating >= 4        is_like <- rating >= 4.5 (ml-100k ratings are whole
    stars, so that is rating == 5)  is_follow, is_comment, is_share, is_hate 0
Labels: ("long_view", "is_like").
A rating outside 0.5..5 or not a multiple of 0.5 is dead-lettered as `bad_rating`; a
timestamp before 1995-01-01 (MovieLens went online in 1997; ml-latest starts in 1996) as
timestamp_out_of_range. --start/--end filter on the UTC date of the timestamp.

Items (ITEM_SCHEMA + `release_year`):
    author_id 0 for every film: films have no uploader, and a single shared "unknown" id
        keeps the column present without inventing structure (an author embedding then
        learns one shared bias);
    duration_ms 0 (unknown), music_id 0 (none), visible True;
    tags <- genres as stable codes (codes.py; "Children's" in ml-100k is spelt "Children"
        as in ml-latest, so both layouts give the same codes; "(no genres listed)" and
        ml-100k's "unknown" give no tag);
    upload_ms <- the release date (ml-100k `release date`) or 1 January of the year in the
        title, e.g. "Heat (1995)" (ml-latest), 0 if absent; release_year likewise (-1).
Users (USER_SCHEMA): the ids seen in the ratings file; with ml-100k's u.user also
    age_log2 (floor(log2(1 + age))), gender and occupation (stable codes), and unknown
    users are checked. Unknown items (not in movies.csv / u.item) are dead-lettered.
"""

from __future__ import annotations

import calendar
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reelrec.data.codes import MISSING_CODE, log2_bucket, stable_code, stable_codes, tag_lists
from reelrec.data.dataset import Interactions
from reelrec.data.files import CSV, Col, Kind, TextFormat, read_checked
from reelrec.data.records import ITEM_SCHEMA, LABELS, USER_SCHEMA
from reelrec.data.validate import (
    RowRules,
    Staged,
    in_date_range,
    ms_to_date_ints,
    validate_events,
)
from reelrec.errors import DataError

MOVIELENS_LABELS: tuple[str, ...] = ("long_view", "is_like")
BAD_RATING = "bad_rating"
MIN_TIMESTAMP_MS = calendar.timegm((1995, 1, 1, 0, 0, 0)) * 1000
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
NO_GENRE = ("unknown", "(no genres listed)")
ITEM_TABLE_SCHEMA = pa.schema([*ITEM_SCHEMA, ("release_year", pa.int64())])

U_DATA = TextFormat(delimiter="\t", column_names=("user_id", "item_id", "rating", "timestamp"))
U_ITEM = TextFormat(
    delimiter="|",
    encoding="latin-1",
    quoting=False,
    column_names=(
        "item_id", "title", "release_date", "video_release_date", "imdb_url",
        *[f"genre_{i}" for i in range(len(GENRES_100K))],
    ),
)  # fmt: skip
U_USER = TextFormat(
    delimiter="|", quoting=False, column_names=("user_id", "age", "gender", "occupation", "zip")
)


def load_movielens(
    folder: Path, start: int | None = None, end: int | None = None, now_ms: int | None = None
) -> Interactions:
    """Load and validate a MovieLens folder (ml-latest layout or ml-100k layout).

    Args:
        folder: holds ratings.csv + movies.csv, or u.data + u.item (+ u.user).
        start, end: YYYYMMDD bounds (inclusive) on the UTC date of the rating, or None.
        now_ms: "now" for the future-timestamp check (tests); None: the wall clock.
    """
    folder = Path(folder)
    if not folder.is_dir():
        found = "a file" if folder.exists() else "nothing"
        raise DataError(folder, f"expected a MovieLens folder, found {found}")
    if (folder / "ratings.csv").exists():
        ratings_path, fmt = folder / "ratings.csv", CSV
        cols = {"userId": "user_id", "movieId": "item_id", "rating": "rating"}
        items = _items_latest(folder / "movies.csv")
        users = None
    elif (folder / "u.data").exists():
        ratings_path, fmt = folder / "u.data", U_DATA
        cols = {"user_id": "user_id", "item_id": "item_id", "rating": "rating"}
        items = _items_100k(folder / "u.item")
        users = _users_100k(folder / "u.user") if (folder / "u.user").exists() else None
    else:
        raise DataError(folder, "no MovieLens ratings: expected ratings.csv or u.data")

    staged, outside = _stage(ratings_path, fmt, cols, start, end)
    rules = RowRules(
        min_timestamp_ms=MIN_TIMESTAMP_MS,
        now_ms=now_ms,
        item_ids=items["item_id"],
        user_ids=None if users is None else users["user_id"],
        note_zero_duration=False,
    )
    events, dead = validate_events(staged, rules)
    if users is None:  # no profile file: the users are those who rated
        users = pa.table({"user_id": pc.unique(events["user_id"])}, schema=USER_SCHEMA)
    return Interactions(
        events=events,
        items=items,
        users=users,
        labels=MOVIELENS_LABELS,
        source=str(folder),
        rows_in=staged.rows_in,
        dead=dead,
        rows_outside_dates=outside,
    )


def _stage(
    path: Path, fmt: TextFormat, names: dict[str, str], start: int | None, end: int | None
) -> tuple[Staged, int]:
    ts_col = "timestamp"
    bad_text: list[str] = []
    raw = read_checked(
        path, [*(Col(n) for n in names), Col(ts_col)], fmt, keep_all=True, malformed=bad_text
    )
    ts_ms = pc.multiply(pc.cast(raw[ts_col], pa.float64()), 1000.0)
    dates = ms_to_date_ints(ts_ms)
    keep = in_date_range(dates, start, end) | pc.is_null(ts_ms).to_numpy(zero_copy_only=False)
    outside = int((~keep).sum())
    if outside:
        raw, ts_ms = raw.filter(pa.array(keep)), pc.filter(ts_ms, pa.array(keep))
    inv = {canon: raw[src] for src, canon in names.items()}
    rating = pc.cast(inv["rating"], pa.float64())
    n = raw.num_rows
    zeros = pa.array(np.zeros(n, np.int64))
    hour = pc.floor(pc.divide(pc.fill_null(ts_ms, 0), 3_600_000.0)).to_numpy() % 24
    cols: dict[str, pa.Array | pa.ChunkedArray] = {
        "user_id": inv["user_id"],
        "item_id": inv["item_id"],
        "timestamp_ms": ts_ms,
        "tab": zeros,
        "hour": pa.array(hour, pa.float64()),
        "watch_ms": zeros,
        "duration_ms": zeros,
        **{label: zeros for label in LABELS},
        "is_click": pa.array(np.ones(n, np.int64)),
        "long_view": pc.cast(pc.greater_equal(rating, 4.0), pa.int64()),
        "is_like": pc.cast(pc.greater_equal(rating, 4.5), pa.int64()),
    }
    r = pc.fill_null(rating, 0.5).to_numpy(zero_copy_only=False)
    bad_rating = (r < 0.5) | (r > 5.0) | (r * 2 != np.round(r * 2))
    source = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([str(path)]))
    staged = Staged(
        pa.table(cols),
        raw,
        source,
        checks=[(BAD_RATING, bad_rating)],
        malformed=[(str(path), text) for text in bad_text],
    )
    return staged, outside


def _unique_items(table: pa.Table, path: Path) -> pa.Table:
    if table["item_id"].null_count:
        raise DataError(path, "an item id is missing (null)", "item_id")
    _, first = np.unique(table["item_id"].to_numpy(), return_index=True)
    return table.take(pa.array(np.sort(first))) if len(first) < table.num_rows else table


def _item_table(ids: pa.Array, tags: pa.Array, year: np.ndarray, upload_ms: np.ndarray) -> pa.Table:
    n = len(ids)
    zeros = pa.array(np.zeros(n, np.int64))
    cols = {
        "item_id": pc.cast(ids, pa.int64()),
        "author_id": zeros,
        "duration_ms": zeros,
        "upload_ms": pa.array(upload_ms, pa.int64()),
        "music_id": zeros,
        "tags": tags,
        "visible": pa.array(np.ones(n, bool)),
        "release_year": pa.array(year, pa.int64()),
    }
    return pa.table(cols, schema=ITEM_TABLE_SCHEMA)


def _year_start_ms(year: np.ndarray) -> np.ndarray:
    ok = year > 1800
    days = (np.where(ok, year, 1970) - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    return np.where(ok, days.astype(np.int64) * 86_400_000, 0)


def _items_latest(path: Path) -> pa.Table:
    t = read_checked(
        path, [Col("movieId"), Col("title", Kind.STR), Col("genres", Kind.STR)]
    ).rename_columns(["item_id", "title", "genres"])
    t = _unique_items(t, path)
    found = pc.extract_regex(pc.fill_null(t["title"], ""), r"\((?P<year>\d{4})\)\s*$")
    year_text = pc.struct_field(found, "year")
    year = pc.fill_null(pc.cast(year_text, pa.int64()), MISSING_CODE).to_numpy()
    genres = pc.replace_substring(pc.fill_null(t["genres"], ""), "(no genres listed)", "")
    return _item_table(t["item_id"], tag_lists(genres, r"\|"), year, _year_start_ms(year))


def _items_100k(path: Path) -> pa.Table:
    genre_cols = [Col(f"genre_{i}") for i in range(len(GENRES_100K))]
    t = read_checked(path, [Col("item_id"), Col("release_date", Kind.STR), *genre_cols], U_ITEM)
    t = _unique_items(t, path)
    flags = np.stack(
        [pc.fill_null(t[c.name], 0).to_numpy(zero_copy_only=False) for c in genre_cols], axis=1
    )
    codes = np.array(
        [MISSING_CODE if g in NO_GENRE else stable_code(g) for g in GENRES_100K], np.int64
    )
    flags = (flags == 1) & (codes != MISSING_CODE)[None, :]
    rows, genre = np.nonzero(flags)  # row-major: pieces come out grouped by row
    offsets = np.zeros(t.num_rows + 1, np.int32)
    np.cumsum(np.bincount(rows, minlength=t.num_rows), out=offsets[1:])
    tags = pa.ListArray.from_arrays(pa.array(offsets), pa.array(codes[genre]))
    released = pc.strptime(t["release_date"], "%d-%b-%Y", "ms", error_is_null=True)
    upload_ms = pc.fill_null(pc.cast(released, pa.int64()), 0).to_numpy(zero_copy_only=False)
    year = pc.fill_null(pc.year(released), MISSING_CODE).to_numpy(zero_copy_only=False)
    return _item_table(t["item_id"], tags, year, upload_ms)


def _users_100k(path: Path) -> pa.Table:
    t = read_checked(
        path, [Col("user_id"), Col("age"), Col("gender", Kind.STR), Col("occupation", Kind.STR)],
        U_USER,
    )  # fmt: skip
    if t["user_id"].null_count:
        raise DataError(path, "a user id is missing (null)", "user_id")
    return pa.table(
        {
            "user_id": t["user_id"],
            "age_log2": log2_bucket(t["age"]),
            "gender": stable_codes(t["gender"]),
            "occupation": stable_codes(t["occupation"]),
        }
    )
