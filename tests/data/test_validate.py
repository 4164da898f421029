from __future__ import annotations

import calendar
import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reelrec.data import EVENT_SCHEMA, LABELS, load_kuairand
from reelrec.data.records import MAX_WATCH_MS
from reelrec.data.validate import (
    RowRules,
    Staged,
    date_ints_to_ms,
    ms_to_date_ints,
    sort_order,
    validate_events,
)
from tests.data.datafiles import (
    NOW_MS,
    log_row,
    write_csv_rows,
    write_users,
    write_videos,
)

T0 = 1_650_844_800_000
WATCH = st.one_of(st.integers(0, 100_000), st.integers(-10, -1), st.just(MAX_WATCH_MS + 1))
LABEL = st.sampled_from([0, 1, 0, 1, 2, -1])
ROW = st.fixed_dictionaries(
    {
        "user_id": st.one_of(st.integers(0, 4), st.just(-1), st.none()),
        "item_id": st.integers(0, 6),  # ids 5, 6 are unknown
        "timestamp_ms": st.one_of(st.integers(T0, T0 + 10**9), st.just(NOW_MS + 10**10)),
        "watch_ms": WATCH,
        "is_like": LABEL,
    }
)


def staged_from(rows: list[dict]) -> Staged:
    n = len(rows)
    cols = {}
    for name in EVENT_SCHEMA.names:
        values = [r.get(name, 1 if name == "is_click" else 0) for r in rows]
        cols[name] = pa.array(values, pa.int64())
    table = pa.table(cols)
    source = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array(["mem"]))
    return Staged(table, table, source)


@settings(max_examples=150, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=40))
def test_every_row_used_or_dead_with_its_reason(rows: list[dict]) -> None:
    rules = RowRules(now_ms=NOW_MS, item_ids=pa.array(range(5)), user_ids=pa.array(range(5)))
    events, dead = validate_events(staged_from(rows), rules)
    assert len(rows) == events.num_rows + dead.total
    assert events.schema.equals(EVENT_SCHEMA)
    ev = {c: events[c].to_numpy() for c in ("user_id", "item_id", "watch_ms", "is_like")}
    assert ((ev["watch_ms"] >= 0) & (ev["watch_ms"] <= MAX_WATCH_MS)).all()
    assert np.isin(ev["is_like"], [0, 1]).all() and (ev["item_id"] < 5).all()
    assert (events["timestamp_ms"].to_numpy() <= NOW_MS + rules.future_slack_ms).all()
    keys = list(zip(*(events[c].to_pylist() for c in ("timestamp_ms", "user_id", "item_id")),
                    strict=True))  # fmt: skip
    assert keys == sorted(keys)
    expected_null = sum(r["user_id"] is None for r in rows)
    assert dead.counts.get("null_value", 0) == expected_null
    if dead.total:
        assert dead.rows.num_rows == dead.total
        assert set(dead.rows["reason"].to_pylist()) == set(dead.counts)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(1, 4), st.sampled_from([10, 11, 12, 13]),
                  st.sampled_from([20220425, 20220426, 20220427]), WATCH, LABEL),
        min_size=1, max_size=30,
    ),
    st.sampled_from([None, 20220426]),
)  # fmt: skip
def test_kuairand_rows_in_invariant(rows: list[tuple], start: int | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log = [log_row(u, v, d, 9, play_time_ms=w, is_like=lab) for u, v, d, w, lab in rows]
        write_csv_rows(folder / "log_standard_a.csv", log)
        write_videos(folder / "video_features_basic_x.csv")
        write_users(folder / "user_features_x.csv")
        data = load_kuairand(folder, start=start, now_ms=NOW_MS)
    in_range = sum(start is None or d >= start for _, _, d, _, _ in rows)
    assert data.rows_in == in_range == data.events.num_rows + data.dead.total
    assert data.rows_outside_dates == len(rows) - in_range
    # first reason wins: a bad label is reported before the watch time, ids after it
    kept = [r for r in rows if start is None or r[2] >= start]
    assert data.dead.counts.get("negative_watch_time", 0) == sum(
        w < 0 and lab in (0, 1) for _, _, _, w, lab in kept
    )
    assert data.dead.counts.get("unknown_item", 0) == sum(
        v == 13 and 0 <= w <= MAX_WATCH_MS and lab in (0, 1) for _, v, _, w, lab in kept
    )


def test_date_helpers_agree_with_datetime() -> None:
    dates = [19700101, 20220425, 20240229, 20991231, 20000301]
    ms, ok = date_ints_to_ms(pa.array(dates))
    assert ok.all()
    for d, m in zip(dates, ms, strict=True):
        day = dt.date(d // 10000, d // 100 % 100, d % 100)
        assert m == calendar.timegm(day.timetuple()) * 1000
    assert ms_to_date_ints(pa.array(ms + 3_600_000)).tolist() == dates
    _, ok = date_ints_to_ms(pa.array([20230229, 20221301, 20220400, None, 123]))
    assert not ok.any()


def test_labels_constant_is_the_kuairand_tuple() -> None:
    assert LABELS == ("is_click", "long_view", "is_like", "is_follow", "is_comment", "is_share",
                      "is_hate")  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)), max_size=60))
def test_sort_order_matches_python_sort_with_ties(keys: list[tuple[int, int, int]]) -> None:
    table = pa.table(
        {
            "timestamp_ms": pa.array([k[0] for k in keys], pa.int64()),
            "user_id": pa.array([k[1] for k in keys], pa.int64()),
            "item_id": pa.array([k[2] for k in keys], pa.int64()),
            "row": pa.array(range(len(keys)), pa.int64()),
        }
    )
    order = sort_order(table)
    got = table if order is None else table.take(order)
    expected = sorted(range(len(keys)), key=lambda r: keys[r])  # Python's sort is stable
    assert got["row"].to_pylist() == expected


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 3))
def test_sort_order_nearly_sorted_log_with_ties(seed: int, descents: int) -> None:
    rng = np.random.default_rng(seed)
    n = 500
    ts = np.sort(rng.integers(0, 60, n))  # time-ordered with many ties...
    for _ in range(descents):  # ...and a few rows out of place (under 1%)
        i = rng.integers(0, n)
        ts[i] = max(0, ts[i] - 5)
    keys = list(zip(ts.tolist(), rng.integers(0, 4, n).tolist(), rng.integers(0, 4, n).tolist(),
                    strict=True))  # fmt: skip
    table = pa.table(
        {
            "timestamp_ms": pa.array([k[0] for k in keys], pa.int64()),
            "user_id": pa.array([k[1] for k in keys], pa.int64()),
            "item_id": pa.array([k[2] for k in keys], pa.int64()),
            "row": pa.array(range(n), pa.int64()),
        }
    )
    order = sort_order(table)
    got = table if order is None else table.take(order)
    assert got["row"].to_pylist() == sorted(range(n), key=lambda r: keys[r])
