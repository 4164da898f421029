"""Builders of tiny datasets in the real on-disk formats (used by conftest and tests)."""

from __future__ import annotations

import calendar
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

LOG_COLUMNS = (
    "user_id", "video_id", "date", "hourmin", "time_ms", "is_click", "is_like", "is_follow",
    "is_comment", "is_forward", "is_hate", "long_view", "play_time_ms", "duration_ms",
    "profile_stay_time", "comment_stay_time", "is_profile_enter", "is_rand", "tab",
)  # fmt: skip
NOW_MS = calendar.timegm((2022, 6, 1, 0, 0, 0)) * 1000  # "now" for the future check


def beijing_ms(date: int, hour: int, minute: int = 0) -> int:
    """Epoch ms of a Beijing (UTC+8) wall-clock time on YYYYMMDD `date`."""
    y, m, d = date // 10000, date // 100 % 100, date % 100
    return (calendar.timegm((y, m, d, hour, minute, 0)) - 8 * 3600) * 1000


def log_row(user: int, video: int, date: int, hour: int, **overrides: object) -> dict:
    """One official log_standard row (all 19 columns)."""
    row: dict[str, object] = dict.fromkeys(LOG_COLUMNS, 0)
    row.update(
        user_id=user, video_id=video, date=date, hourmin=hour * 100,
        time_ms=beijing_ms(date, hour, 7), is_click=1, long_view=1, play_time_ms=12_000,
        duration_ms=20_000, tab=1,
    )  # fmt: skip
    row.update(overrides)
    return row


def write_csv_rows(path: Path, rows: list[dict], columns: tuple[str, ...] = LOG_COLUMNS) -> Path:
    """Write rows as CSV text exactly as given (values may be wrong on purpose)."""
    lines = [",".join(columns)]
    lines += [",".join("" if r.get(c) is None else str(r.get(c)) for c in columns) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def default_log_rows() -> list[dict]:
    return [
        log_row(1, 10, 20220425, 9, is_like=1),
        log_row(2, 11, 20220425, 8, is_forward=1, play_time_ms=900),
        log_row(1, 12, 20220426, 23, tab=4),
        log_row(3, 10, 20220427, 0, is_hate=1, long_view=0),
        log_row(2, 12, 20220427, 12, duration_ms=0),  # duration unknown: kept, noted
    ]


VIDEO_COLUMNS = (
    "video_id", "author_id", "video_type", "upload_dt", "upload_type", "visible_status",
    "video_duration", "server_width", "server_height", "music_id", "music_type", "tag",
)  # fmt: skip


def write_videos(path: Path, rows: list[dict] | None = None) -> Path:
    rows = rows or [
        dict(video_id=10, author_id=500, video_type="NORMAL", upload_dt="2022-04-10",
             upload_type="LongImport", visible_status=0.0, video_duration=20000.0,
             server_width=720.0, server_height=1280.0, music_id=77, music_type=9.0, tag="39"),
        dict(video_id=11, author_id=501, video_type="AD", upload_dt="2022-04-09",
             upload_type="Web", visible_status=1.0, video_duration=None, server_width=720.0,
             server_height=1280.0, music_id=0, music_type=None, tag="2,7"),
        dict(video_id=12, author_id=500, video_type="NORMAL", upload_dt="2022-04-11",
             upload_type="Kmovie", visible_status=0.0, video_duration=15000.0,
             server_width=720.0, server_height=1280.0, music_id=78, music_type=4.0, tag=""),
    ]  # fmt: skip
    lines = [",".join(VIDEO_COLUMNS)]
    for r in rows:
        vals = ["" if r.get(c) is None else str(r.get(c)) for c in VIDEO_COLUMNS]
        vals = [f'"{v}"' if "," in v else v for v in vals]
        lines.append(",".join(vals))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_users(path: Path, user_ids: tuple[int, ...] = (1, 2, 3)) -> Path:
    degrees = ["full_active", "high_active", "2_14_day_new"]
    table = pa.table(
        {
            "user_id": list(user_ids),
            "user_active_degree": [degrees[i % 3] for i in range(len(user_ids))],
            "is_lowactive_period": [0] * len(user_ids),
            "is_live_streamer": [-124 if i % 2 else 1 for i in range(len(user_ids))],
            "follow_user_num": [i * 3 for i in range(len(user_ids))],
            "follow_user_num_range": ["0" if i == 0 else "(0,10]" for i in range(len(user_ids))],
            "register_days": [14 + 100 * i for i in range(len(user_ids))],
            "onehot_feat4": [1.0 if i % 2 else None for i in range(len(user_ids))],
        }
    )
    pacsv.write_csv(table, path)
    return path


def write_parquet_copy(csv_path: Path) -> Path:
    out = csv_path.with_suffix(".parquet")
    pq.write_table(pacsv.read_csv(csv_path), out)
    return out


GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def u_item_line(item: int, title: str, date: str, genres: set[str]) -> str:
    flags = ["1" if g in genres else "0" for g in GENRES_100K]
    return "|".join([str(item), title, date, "", "http://x", *flags])
