from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from reelrec.data import EVENT_SCHEMA, ITEM_SCHEMA, LABELS, load_events
from reelrec.data.codes import stable_code
from reelrec.errors import DataError

T0 = 1_650_844_800_000  # 2022-04-25 00:00 UTC


def canonical_events(n: int = 50, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    ts = T0 + rng.integers(0, 3 * 86_400_000, n)
    cols = {
        "user_id": rng.integers(0, 5, n),
        "item_id": rng.integers(100, 110, n),
        "timestamp_ms": ts,
        "tab": rng.integers(0, 3, n),
        "hour": (ts // 3_600_000) % 24,
        "watch_ms": rng.integers(0, 60_000, n),
        "duration_ms": rng.integers(1_000, 60_000, n),
        **{label: rng.integers(0, 2, n).astype(np.int8) for label in LABELS},
    }
    return pa.Table.from_pydict(cols, schema=EVENT_SCHEMA)


def canonical_items() -> pa.Table:
    ids = list(range(100, 110))
    cols = {
        "item_id": ids,
        "author_id": [i % 3 for i in ids],
        "duration_ms": [5_000] * 10,
        "upload_ms": [T0 - 86_400_000] * 10,
        "music_id": [0] * 10,
        "tags": [[1, 2]] * 5 + [[]] * 5,
        "visible": [True] * 9 + [False],
    }
    table = pa.Table.from_pydict(cols, schema=ITEM_SCHEMA)
    return table.append_column("topic", pa.array([i % 4 for i in ids], pa.int64()))


@pytest.fixture
def canonical_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "world"
    folder.mkdir()
    pq.write_table(canonical_events(), folder / "events.parquet")
    pq.write_table(canonical_items(), folder / "items.parquet")
    users = pa.table({"user_id": pa.array(range(5), pa.int64()), "age": pa.array([1] * 5)})
    pq.write_table(users, folder / "users.parquet")
    return folder


def load(path: Path, now_ms: int, **kw: object):
    data = load_events(path, now_ms=now_ms, **kw)
    assert data.rows_in == data.events.num_rows + data.dead.total
    return data


def test_canonical_layout_round_trip(canonical_dir: Path, now_ms: int) -> None:
    data = load(canonical_dir, now_ms)
    expected = canonical_events().sort_by([("timestamp_ms", "ascending"), ("user_id", "ascending"),
                                           ("item_id", "ascending")])  # fmt: skip
    assert data.events.equals(expected)
    assert data.labels == LABELS and data.dead.total == 0
    assert data.items.column_names == [*ITEM_SCHEMA.names, "topic"]
    assert data.items["tags"].to_pylist()[0] == [1, 2]
    assert data.items["visible"].to_pylist()[-1] is False
    assert data.users.column_names == ["user_id", "age"]


def test_canonical_unknown_ids_dead_lettered(canonical_dir: Path, now_ms: int) -> None:
    events = canonical_events()
    extra = canonical_events(2, seed=1)
    extra = extra.set_column(1, "item_id", pa.array([999, 100], pa.int64()))
    extra = extra.set_column(0, "user_id", pa.array([0, 77], pa.int64()))
    pq.write_table(pa.concat_tables([events, extra]), canonical_dir / "events.parquet")
    data = load(canonical_dir, now_ms)
    assert data.dead.counts == {"unknown_item": 1, "unknown_user": 1}


def test_without_items_file_items_built_from_events(canonical_dir: Path, now_ms: int) -> None:
    (canonical_dir / "items.parquet").unlink()
    (canonical_dir / "users.parquet").unlink()
    data = load(canonical_dir, now_ms)
    ev = data.events
    assert sorted(data.items["item_id"].to_pylist()) == sorted(set(ev["item_id"].to_pylist()))
    assert sorted(data.users["user_id"].to_pylist()) == sorted(set(ev["user_id"].to_pylist()))
    first = data.items["item_id"][0].as_py()
    mask = np.array(ev["item_id"].to_pylist()) == first
    assert data.items["duration_ms"][0].as_py() == ev["duration_ms"].to_numpy()[mask].max()


def test_log_file_with_mapping_json(tmp_path: Path, now_ms: int) -> None:
    log = tmp_path / "mylog.csv"
    log.write_text(
        "uid,video,ts_s,play,liked\n"
        "u_1,7,1650844800,3000,1\n"
        "u_2,7,1650848400,0,0\n"
        "u_1,8,1650931200,61000,0\n"
    )
    (tmp_path / "columns.json").write_text(
        json.dumps({"user_id": "uid", "item_id": "video", "timestamp_ms": "ts_s",
                    "timestamp_unit": "s", "watch_ms": "play", "is_like": "liked"})
    )  # fmt: skip
    data = load(log, now_ms)
    assert data.labels == ("is_like",)
    rows = data.events.to_pylist()
    assert [r["timestamp_ms"] for r in rows] == [1650844800000, 1650848400000, 1650931200000]
    assert rows[0]["user_id"] == stable_code("u_1") == rows[2]["user_id"]
    assert [r["hour"] for r in rows] == [0, 1, 0]
    assert [r["is_click"] for r in rows] == [1, 1, 1] and rows[0]["is_like"] == 1
    assert rows[2]["watch_ms"] == 61000 and rows[2]["duration_ms"] == 0
    assert data.dead.notes["duration_unknown"] == 3
    assert load(log, now_ms, start=20220426).events.num_rows == 1


def test_mapping_argument_and_parquet_timestamps(tmp_path: Path, now_ms: int) -> None:
    log = tmp_path / "log.parquet"
    ts = pa.array([T0, T0 + 5_000], pa.timestamp("ms", tz="UTC"))
    pq.write_table(pa.table({"u": [1, 2], "i": [3, 4], "when": ts}), log)
    mapping = {"user_id": "u", "item_id": "i", "timestamp_ms": "when"}
    data = load(log, now_ms, mapping=mapping)
    assert data.events["timestamp_ms"].to_pylist() == [T0, T0 + 5_000]


def test_items_csv_with_text_tags_and_extras(canonical_dir: Path, now_ms: int) -> None:
    (canonical_dir / "items.parquet").unlink()
    ids = list(range(100, 110))
    pacsv.write_csv(
        pa.table({"item_id": ids, "tags": ["3,17"] * 5 + ["comedy|drama"] * 5,
                  "category": ["news"] * 10, "visible": [1] * 9 + [0]}),
        canonical_dir / "items.csv",
    )  # fmt: skip
    items = load(canonical_dir, now_ms).items
    assert items["tags"].to_pylist()[0] == [3, 17]
    assert items["tags"].to_pylist()[9] == [stable_code("comedy"), stable_code("drama")]
    assert items["category"].to_pylist()[0] == stable_code("news")
    assert items["visible"].to_pylist()[-1] is False
    assert items["author_id"].to_pylist()[0] == 0


def test_duplicate_item_rows_noted(canonical_dir: Path, now_ms: int) -> None:
    items = canonical_items()
    pq.write_table(pa.concat_tables([items, items.slice(0, 2)]), canonical_dir / "items.parquet")
    data = load(canonical_dir, now_ms)
    assert data.items.num_rows == 10 and data.dead.notes["items_duplicate_id"] == 2


def test_unknown_mapping_key_fails(tmp_path: Path, now_ms: int) -> None:
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp_ms\n1,2,1650844800000\n")
    (tmp_path / "columns.json").write_text('{"userid": "user_id"}')
    with pytest.raises(DataError, match="columns.json") as e:
        load(log, now_ms)
    assert e.value.column == "userid"


def test_bad_json_mapping_fails(tmp_path: Path, now_ms: int) -> None:
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp_ms\n1,2,1650844800000\n")
    (tmp_path / "columns.json").write_text("{user_id: ")
    with pytest.raises(DataError, match="not valid JSON"):
        load(log, now_ms)


def test_bad_timestamp_unit_fails(tmp_path: Path, now_ms: int) -> None:
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp_ms\n1,2,1650844800000\n")
    with pytest.raises(DataError, match="timestamp_unit"):
        load(log, now_ms, mapping={"timestamp_unit": "minutes"})


def test_missing_timestamp_column_fails(tmp_path: Path, now_ms: int) -> None:
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,time\n1,2,1650844800000\n")
    with pytest.raises(DataError, match="missing column") as e:
        load(log, now_ms)
    assert e.value.column == "timestamp_ms"


def test_wrong_type_label_in_parquet_fails(canonical_dir: Path, now_ms: int) -> None:
    events = canonical_events()
    idx = events.column_names.index("is_like")
    events = events.set_column(idx, "is_like", pa.array(["yes"] * events.num_rows))
    pq.write_table(events, canonical_dir / "events.parquet")
    with pytest.raises(DataError, match="yes") as e:
        load(canonical_dir, now_ms)
    assert e.value.column == "is_like"


def test_empty_parquet_fails(canonical_dir: Path, now_ms: int) -> None:
    pq.write_table(canonical_events().slice(0, 0), canonical_dir / "events.parquet")
    with pytest.raises(DataError, match="empty file"):
        load(canonical_dir, now_ms)


def test_corrupt_parquet_fails(canonical_dir: Path, now_ms: int) -> None:
    (canonical_dir / "events.parquet").write_bytes(b"PAR1 definitely not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load(canonical_dir, now_ms)


def test_folder_without_events_fails(tmp_path: Path, now_ms: int) -> None:
    with pytest.raises(DataError, match="events.parquet or events.csv"):
        load(tmp_path, now_ms)


def test_float_columns_rounded_and_checked(tmp_path: Path, now_ms: int) -> None:
    log = tmp_path / "log.csv"
    log.write_text(
        "user_id,item_id,timestamp_ms,watch_ms,is_like\n"
        "1,2,1650844800000,1500.6,1.0\n"
        "1,2,1650844800001,10,0.5\n"
        "1.5,2,1650844800002,10,0\n"
    )
    data = load(log, now_ms)
    assert data.events["watch_ms"].to_pylist() == [1501]
    assert data.dead.counts == {"label_not_binary": 1, "bad_id": 1}
