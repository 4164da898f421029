from __future__ import annotations

import calendar
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from reelrec.data import EVENT_SCHEMA, ITEM_SCHEMA, LABELS, load_kuairand
from reelrec.data.codes import stable_code
from reelrec.data.records import MAX_WATCH_MS
from reelrec.errors import DataError
from tests.data.datafiles import (
    LOG_COLUMNS,
    beijing_ms,
    default_log_rows,
    log_row,
    write_csv_rows,
    write_parquet_copy,
)

LOG = "log_standard_4_22_to_4_27_pure.csv"


def load(folder: Path, now_ms: int, **kw: int | None):
    data = load_kuairand(folder, now_ms=now_ms, **kw)
    assert data.rows_in == data.events.num_rows + data.dead.total
    return data


def replace_log(folder: Path, rows: list[dict], columns: tuple[str, ...] = LOG_COLUMNS) -> None:
    write_csv_rows(folder / LOG, rows, columns)


def test_events_mapped_from_official_columns(kuairand_dir: Path, now_ms: int) -> None:
    data = load(kuairand_dir, now_ms)
    ev = data.events
    assert ev.schema.equals(EVENT_SCHEMA)
    assert data.labels == LABELS
    assert data.rows_in == 5 and ev.num_rows == 5 and data.dead.total == 0
    rows = {(r["user_id"], r["item_id"]): r for r in ev.to_pylist()}
    liked = rows[(1, 10)]
    assert liked["timestamp_ms"] == beijing_ms(20220425, 9, 7)
    assert liked["hour"] == 9 and liked["tab"] == 1
    assert liked["watch_ms"] == 12_000 and liked["duration_ms"] == 20_000
    assert liked["is_like"] == 1 and liked["is_click"] == 1 and liked["long_view"] == 1
    shared = rows[(2, 11)]
    assert shared["is_share"] == 1 and shared["watch_ms"] == 900  # is_forward -> is_share
    assert rows[(3, 10)]["is_hate"] == 1 and rows[(3, 10)]["long_view"] == 0
    assert rows[(1, 12)]["hour"] == 23 and rows[(1, 12)]["tab"] == 4


def test_events_sorted_by_time_user_item(kuairand_dir: Path, now_ms: int) -> None:
    rows = [log_row(u, v, 20220425, 9, time_ms=beijing_ms(20220425, 9)) for u, v in
            [(5, 12), (2, 11), (2, 10), (1, 12)]]  # fmt: skip
    rows.append(log_row(9, 10, 20220425, 8))
    replace_log(kuairand_dir, rows)
    (kuairand_dir / "user_features_pure.csv").unlink()
    from tests.data.datafiles import write_users

    write_users(kuairand_dir / "user_features_pure.csv", (1, 2, 5, 9))
    ev = load(kuairand_dir, now_ms).events
    keys = list(zip(*(ev[c].to_pylist() for c in ("timestamp_ms", "user_id", "item_id")),
                    strict=True))  # fmt: skip
    assert keys == sorted(keys)
    assert ev["user_id"].to_pylist() == [9, 1, 2, 2, 5]


def test_zero_duration_kept_and_noted(kuairand_dir: Path, now_ms: int) -> None:
    data = load(kuairand_dir, now_ms)
    assert data.dead.notes["duration_unknown"] == 1
    assert 0 in data.events["duration_ms"].to_pylist()


def test_items_mapped(kuairand_dir: Path, now_ms: int) -> None:
    items = load(kuairand_dir, now_ms).items
    for field in ITEM_SCHEMA:
        assert items.schema.field(field.name).type == field.type
    by_id = {r["item_id"]: r for r in items.to_pylist()}
    assert by_id[10]["author_id"] == 500 and by_id[10]["duration_ms"] == 20000
    assert by_id[10]["upload_ms"] == calendar.timegm((2022, 4, 10, 0, 0, 0)) * 1000
    assert by_id[10]["tags"] == [39] and by_id[11]["tags"] == [2, 7] and by_id[12]["tags"] == []
    assert by_id[10]["visible"] and not by_id[11]["visible"]
    assert by_id[11]["duration_ms"] == 0  # null video_duration: unknown
    assert by_id[10]["video_type"] == stable_code("NORMAL") == by_id[12]["video_type"]
    assert by_id[11]["video_type"] == stable_code("AD")
    assert by_id[11]["upload_type"] == stable_code("Web")
    assert by_id[10]["music_type"] == 9 and by_id[11]["music_type"] == -1


def test_users_every_profile_field_int64(kuairand_dir: Path, now_ms: int) -> None:
    users = load(kuairand_dir, now_ms).users
    assert users.column_names[0] == "user_id"
    assert all(str(t) == "int64" for t in users.schema.types)
    by_id = {r["user_id"]: r for r in users.to_pylist()}
    assert by_id[1]["user_active_degree"] == stable_code("full_active")
    assert by_id[1]["follow_user_num_range"] == stable_code("0")  # text, even when digits
    assert by_id[2]["follow_user_num_log2"] == 2  # 3 follows: floor(log2(4))
    assert by_id[3]["register_days_log2"] == int(np.log2(1 + 214))
    assert by_id[2]["is_live_streamer"] == -124
    assert by_id[1]["onehot_feat4"] == -1 and by_id[2]["onehot_feat4"] == 1


def test_codes_do_not_depend_on_file_order(kuairand_dir: Path, now_ms: int) -> None:
    first = load(kuairand_dir, now_ms).items
    lines = (kuairand_dir / "video_features_basic_pure.csv").read_text().splitlines()
    reordered = [lines[0], *reversed(lines[1:])]
    (kuairand_dir / "video_features_basic_pure.csv").write_text("\n".join(reordered) + "\n")
    second = load(kuairand_dir, now_ms).items.sort_by("item_id")
    assert first.sort_by("item_id").equals(second)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [(20220426, None, 3), (None, 20220425, 2), (20220426, 20220426, 1), (20220501, None, 0)],
)
def test_date_filter_uses_date_column(
    kuairand_dir: Path, now_ms: int, start: int | None, end: int | None, expected: int
) -> None:
    data = load(kuairand_dir, now_ms, start=start, end=end)
    assert data.events.num_rows == expected == data.rows_in
    assert data.rows_outside_dates == 5 - expected


def test_later_log_file_is_picked_up(kuairand_dir: Path, now_ms: int) -> None:
    write_csv_rows(kuairand_dir / "log_standard_4_28_to_4_29_pure.csv",
                   [log_row(3, 11, 20220428, 10), log_row(1, 11, 20220429, 11)])  # fmt: skip
    data = load(kuairand_dir, now_ms)
    assert data.rows_in == 7 and data.events.num_rows == 7
    assert load(kuairand_dir, now_ms, start=20220428).events.num_rows == 2


def test_csv_and_parquet_copies_not_double_counted(kuairand_dir: Path, now_ms: int) -> None:
    parquet = write_parquet_copy(kuairand_dir / LOG)
    # make the copies differ so we can tell which one was read: parquet must win
    write_csv_rows(kuairand_dir / LOG, default_log_rows()[:2])
    data = load(kuairand_dir, now_ms)
    assert data.rows_in == 5 == data.events.num_rows
    assert pq.read_metadata(parquet).num_rows == 5


def test_later_parquet_log_beside_csv_log(kuairand_dir: Path, now_ms: int) -> None:
    later = kuairand_dir / "log_standard_5_01_to_5_02_pure.csv"
    write_csv_rows(later, [log_row(2, 10, 20220501, 7)])
    write_parquet_copy(later)
    later.unlink()
    assert load(kuairand_dir, now_ms).rows_in == 6


def test_missing_column_fails(kuairand_dir: Path, now_ms: int) -> None:
    columns = tuple(c for c in LOG_COLUMNS if c != "play_time_ms")
    replace_log(kuairand_dir, default_log_rows(), columns)
    with pytest.raises(DataError) as e:
        load(kuairand_dir, now_ms)
    assert e.value.column == "play_time_ms"
    assert LOG in str(e.value) and "missing column" in str(e.value)
    assert e.value.exit_code == 2


def test_missing_item_column_fails(kuairand_dir: Path, now_ms: int) -> None:
    path = kuairand_dir / "video_features_basic_pure.csv"
    lines = [",".join(line.split(",")[:-1]) for line in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")  # drops `tag` (and splits a quoted tag: fine)
    with pytest.raises(DataError, match="video_features_basic_pure.csv") as e:
        load(kuairand_dir, now_ms)
    assert e.value.column == "tag"


def test_text_in_numeric_column_fails(kuairand_dir: Path, now_ms: int) -> None:
    rows = default_log_rows()
    rows[3]["play_time_ms"] = "twelve seconds"
    replace_log(kuairand_dir, rows)
    with pytest.raises(DataError) as e:
        load(kuairand_dir, now_ms)
    assert e.value.column == "play_time_ms"
    assert "twelve seconds" in str(e.value) and "wrong type" in str(e.value)
    assert LOG in e.value.path


def test_text_in_parquet_numeric_column_fails(kuairand_dir: Path, now_ms: int) -> None:
    rows = default_log_rows()
    for r in rows:
        r["time_ms"] = f"t{r['time_ms']}"
    replace_log(kuairand_dir, rows)
    write_parquet_copy(kuairand_dir / LOG)
    with pytest.raises(DataError, match=r"\.parquet") as e:
        load(kuairand_dir, now_ms)
    assert e.value.column == "time_ms"


def test_empty_log_fails(kuairand_dir: Path, now_ms: int) -> None:
    replace_log(kuairand_dir, [])  # header only
    with pytest.raises(DataError, match="empty file") as e:
        load(kuairand_dir, now_ms)
    assert LOG in e.value.path


def test_zero_byte_log_fails(kuairand_dir: Path, now_ms: int) -> None:
    (kuairand_dir / LOG).write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        load(kuairand_dir, now_ms)


def test_empty_feature_file_fails(kuairand_dir: Path, now_ms: int) -> None:
    (kuairand_dir / "user_features_pure.csv").write_text("user_id,user_active_degree\n")
    with pytest.raises(DataError, match="user_features_pure.csv.*empty file"):
        load(kuairand_dir, now_ms)


def test_missing_feature_file_fails(kuairand_dir: Path, now_ms: int) -> None:
    (kuairand_dir / "video_features_basic_pure.csv").unlink()
    with pytest.raises(DataError, match="video_features_basic"):
        load(kuairand_dir, now_ms)


def test_no_log_fails(kuairand_dir: Path, now_ms: int) -> None:
    (kuairand_dir / LOG).unlink()
    with pytest.raises(DataError, match="log_standard"):
        load(kuairand_dir, now_ms)


def test_missing_folder_fails(tmp_path: Path, now_ms: int) -> None:
    with pytest.raises(DataError, match="found nothing"):
        load(tmp_path / "nope", now_ms)


def test_negative_play_time_dead_lettered(kuairand_dir: Path, now_ms: int) -> None:
    rows = default_log_rows()
    rows[1]["play_time_ms"] = -500
    replace_log(kuairand_dir, rows)
    data = load(kuairand_dir, now_ms)
    assert data.events.num_rows == 4
    assert data.dead.counts == {"negative_watch_time": 1}
    dead = data.dead.rows.to_pylist()
    assert len(dead) == 1
    assert dead[0]["play_time_ms"] == "-500" and dead[0]["video_id"] == "11"
    assert dead[0]["reason"] == "negative_watch_time"
    assert dead[0]["source"].endswith(LOG)
    assert dead[0]["profile_stay_time"] == "0"  # whole original row, unused columns too


def bad_rows() -> list[tuple[str, dict]]:
    """(expected reason, a log row with exactly that problem)."""
    return [
        ("absurd_watch_time", log_row(1, 10, 20220425, 9, play_time_ms=MAX_WATCH_MS + 1)),
        ("label_not_binary", log_row(1, 10, 20220425, 9, is_like=2)),
        ("label_not_binary", log_row(1, 10, 20220425, 9, long_view=-1)),
        ("unknown_item", log_row(1, 99, 20220425, 9)),
        ("unknown_user", log_row(42, 10, 20220425, 9)),
        ("null_value", log_row(1, None, 20220425, 9)),
        ("null_value", log_row(1, 10, 20220425, 9, is_click=None)),
        ("timestamp_out_of_range", log_row(1, 10, 20220425, 9, time_ms=beijing_ms(20220420, 9))),
        ("timestamp_in_future", log_row(1, 10, 20991231, 9)),
        ("bad_date", log_row(1, 10, 20220431, 9, time_ms=beijing_ms(20220430, 9))),
        ("bad_id", log_row(-3, 10, 20220425, 9)),
        ("bad_context", log_row(1, 10, 20220425, 9, hourmin=2500)),
        ("negative_duration", log_row(1, 10, 20220425, 9, duration_ms=-1)),
    ]


@pytest.mark.parametrize(("reason", "row"), bad_rows(), ids=[r for r, _ in bad_rows()])
def test_bad_row_dead_lettered_with_reason(
    kuairand_dir: Path, now_ms: int, reason: str, row: dict
) -> None:
    replace_log(kuairand_dir, [*default_log_rows(), row])
    data = load(kuairand_dir, now_ms)
    assert data.events.num_rows == 5
    assert data.dead.counts == {reason: 1}
    assert data.dead.rows["reason"].to_pylist() == [reason]


def test_malformed_row_dead_lettered(kuairand_dir: Path, now_ms: int) -> None:
    replace_log(kuairand_dir, default_log_rows())
    with open(kuairand_dir / LOG, "a") as f:
        f.write("1,10,20220425\n")
    data = load(kuairand_dir, now_ms)
    assert data.rows_in == 6 and data.events.num_rows == 5
    assert data.dead.counts == {"malformed_row": 1}
    assert data.dead.rows["raw_text"].to_pylist() == ["1,10,20220425"]


def test_dead_letters_from_two_files_name_their_source(kuairand_dir: Path, now_ms: int) -> None:
    later = kuairand_dir / "log_standard_5_01_to_5_02_pure.csv"
    write_csv_rows(later, [log_row(2, 10, 20220501, 7, play_time_ms=-1)])
    rows = default_log_rows()
    rows[0]["is_hate"] = 7
    replace_log(kuairand_dir, rows)
    data = load(kuairand_dir, now_ms)
    sources = dict(zip(data.dead.rows["reason"].to_pylist(), data.dead.rows["source"].to_pylist(),
                       strict=True))  # fmt: skip
    assert sources["negative_watch_time"].endswith(later.name)
    assert sources["label_not_binary"].endswith(LOG)


def test_dead_letter_file_written(kuairand_dir: Path, now_ms: int, tmp_path: Path) -> None:
    rows = default_log_rows()
    rows[2]["play_time_ms"] = -1
    replace_log(kuairand_dir, rows)
    data = load(kuairand_dir, now_ms)
    out = data.dead.write(tmp_path / "out" / "dead_letters.parquet")
    assert out is not None
    assert pq.read_table(out)["reason"].to_pylist() == ["negative_watch_time"]
