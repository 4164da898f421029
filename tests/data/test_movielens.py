from __future__ import annotations

import calendar
from pathlib import Path

import pytest

from reelrec.data import EVENT_SCHEMA, MOVIELENS_LABELS, load_movielens
from reelrec.data.codes import stable_code
from reelrec.errors import DataError


def load(folder: Path, now_ms: int, **kw: int | None):
    data = load_movielens(folder, now_ms=now_ms, **kw)
    assert data.rows_in == data.events.num_rows + data.dead.total
    return data


def test_latest_ratings_become_events(ml_latest_dir: Path, now_ms: int) -> None:
    data = load(ml_latest_dir, now_ms)
    assert data.labels == MOVIELENS_LABELS == ("long_view", "is_like")
    ev = data.events
    assert ev.schema.equals(EVENT_SCHEMA) and ev.num_rows == 5 and data.dead.total == 0
    rows = {(r["user_id"], r["item_id"]): r for r in ev.to_pylist()}
    assert rows[(1, 1)]["timestamp_ms"] == 964982703 * 1000
    assert rows[(1, 1)]["hour"] == (964982703 // 3600) % 24
    assert (rows[(1, 1)]["long_view"], rows[(1, 1)]["is_like"]) == (1, 0)  # 4.0
    assert (rows[(1, 3)]["long_view"], rows[(1, 3)]["is_like"]) == (1, 1)  # 5.0
    assert (rows[(2, 1)]["long_view"], rows[(2, 1)]["is_like"]) == (0, 0)  # 2.5
    assert (rows[(2, 2)]["long_view"], rows[(2, 2)]["is_like"]) == (1, 1)  # 4.5
    assert all(r["is_click"] == 1 and r["watch_ms"] == 0 for r in rows.values())
    assert ev["timestamp_ms"].to_pylist() == sorted(ev["timestamp_ms"].to_pylist())
    assert "duration_unknown" not in data.dead.notes  # MovieLens has no durations at all
    assert sorted(data.users["user_id"].to_pylist()) == [1, 2, 3]


def test_latest_items_genres_and_year(ml_latest_dir: Path, now_ms: int) -> None:
    items = {r["item_id"]: r for r in load(ml_latest_dir, now_ms).items.to_pylist()}
    assert items[2]["tags"] == [stable_code(g) for g in ("Comedy", "Drama", "Romance")]
    assert items[3]["tags"] == []  # "(no genres listed)"
    assert items[1]["release_year"] == 1995 and items[3]["release_year"] == -1
    assert items[1]["upload_ms"] == calendar.timegm((1995, 1, 1, 0, 0, 0)) * 1000
    assert items[1]["author_id"] == 0 and items[1]["visible"]


def test_latest_date_filter_on_utc_date(ml_latest_dir: Path, now_ms: int) -> None:
    data = load(ml_latest_dir, now_ms, start=20180101)
    assert data.events["user_id"].to_pylist() == [3]
    assert data.rows_outside_dates == 4
    assert load(ml_latest_dir, now_ms, end=20001231).events.num_rows == 2


def test_100k_layout(ml_100k_dir: Path, now_ms: int) -> None:
    data = load(ml_100k_dir, now_ms)
    rows = {(r["user_id"], r["item_id"]): r for r in data.events.to_pylist()}
    assert rows[(186, 302)]["is_like"] == 1 and rows[(22, 242)]["long_view"] == 1
    assert rows[(196, 242)]["long_view"] == 0
    assert rows[(196, 242)]["timestamp_ms"] == 881250949000
    items = {r["item_id"]: r for r in data.items.to_pylist()}
    # ml-100k "Children's" and ml-latest "Children" get the same code
    assert items[302]["tags"] == [stable_code("Children"), stable_code("Crime")]
    assert items[303]["tags"] == [] and items[303]["upload_ms"] == 0  # latin-1 title read
    assert items[242]["upload_ms"] == calendar.timegm((1997, 1, 24, 0, 0, 0)) * 1000
    users = {r["user_id"]: r for r in data.users.to_pylist()}
    assert users[22]["occupation"] == stable_code("writer") == users[196]["occupation"]
    assert users[186]["gender"] == stable_code("F")


def test_bad_rating_and_unknown_movie_dead_lettered(ml_latest_dir: Path, now_ms: int) -> None:
    with open(ml_latest_dir / "ratings.csv", "a") as f:
        f.write("4,1,7.0,964982703\n4,1,3.3,964982703\n4,999,4.0,964982703\n5,2,,964982703\n")
        f.write("6,2,4.0,86400\n")  # 1970: before MovieLens existed
    data = load(ml_latest_dir, now_ms)
    assert data.events.num_rows == 5
    assert data.dead.counts == {
        "bad_rating": 2,
        "unknown_item": 1,
        "null_value": 1,
        "timestamp_out_of_range": 1,
    }


def test_100k_unknown_user_dead_lettered(ml_100k_dir: Path, now_ms: int) -> None:
    with open(ml_100k_dir / "u.data", "a") as f:
        f.write("777\t242\t3\t881250949\n")
    assert load(ml_100k_dir, now_ms).dead.counts == {"unknown_user": 1}


def test_no_ratings_file_fails(tmp_path: Path, now_ms: int) -> None:
    with pytest.raises(DataError, match="ratings.csv or u.data"):
        load(tmp_path, now_ms)


def test_missing_movies_file_fails(ml_latest_dir: Path, now_ms: int) -> None:
    (ml_latest_dir / "movies.csv").unlink()
    with pytest.raises(DataError, match="movies.csv.*file not found"):
        load(ml_latest_dir, now_ms)


def test_text_rating_fails(ml_latest_dir: Path, now_ms: int) -> None:
    with open(ml_latest_dir / "ratings.csv", "a") as f:
        f.write("4,1,four stars,964982703\n")
    with pytest.raises(DataError, match="four stars") as e:
        load(ml_latest_dir, now_ms)
    assert e.value.column == "rating"


def test_missing_rating_column_fails(ml_latest_dir: Path, now_ms: int) -> None:
    (ml_latest_dir / "ratings.csv").write_text("userId,movieId,timestamp\n1,1,964982703\n")
    with pytest.raises(DataError, match="ratings.csv") as e:
        load(ml_latest_dir, now_ms)
    assert e.value.column == "rating"
