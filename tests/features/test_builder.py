"""Feature building: no leakage from the event itself or anything at/after its timestamp."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from reelrec.errors import NotFittedError
from reelrec.features import FeatureBuilder
from reelrec.features.builder import user_chunk_order
from tests.conftest import make_interactions


def _frame(events: pa.Table, data):  # type: ignore[no-untyped-def]
    fb = FeatureBuilder(history_len=5).fit(data.events, data.items, data.users, data.labels)
    return fb.transform(events)[0]


def _scramble_from(events: pa.Table, t: int, seed: int) -> pa.Table:
    """Change the labels, watch time and logged hour of every event at or after time t
    (KuaiRand's `hour` is stamped after the view, see data/kuairand.py)."""
    rng = np.random.default_rng(seed)
    late = pc.greater_equal(events.column("timestamp_ms"), t).to_numpy(zero_copy_only=False)
    cols = {}
    for name in events.column_names:
        a = events.column(name).to_numpy().copy()
        if name in ("long_view", "is_click", "is_like", "is_follow"):
            a[late] = rng.integers(0, 2, late.sum())
        elif name == "watch_ms":
            a[late] = rng.integers(0, 100_000, late.sum())
        elif name == "hour":
            a[late] = (a[late] + rng.integers(1, 24, late.sum())) % 24
        cols[name] = pa.array(a, events.schema.field(name).type)
    return pa.Table.from_pydict(cols, schema=events.schema)


@pytest.mark.parametrize("pick", [3, 5, 400, 1500])
def test_features_never_depend_on_the_event_or_later(pick: int) -> None:
    data = make_interactions(seed=pick)
    t = int(data.events.column("timestamp_ms")[pick].as_py())
    base = _frame(data.events, data)
    scrambled = _frame(_scramble_from(data.events, t, pick), data)
    idx = np.flatnonzero(data.events.column("timestamp_ms").to_numpy() == t)
    for name in ("hist_item", "hist_author", "dense", "fields", "tags", "item_id", "user_id"):
        np.testing.assert_array_equal(
            getattr(base, name)[idx], getattr(scrambled, name)[idx], err_msg=name
        )
    # ... while the scrambled labels themselves did change (the test can fail).
    assert not np.array_equal(base.labels[idx[0] :], scrambled.labels[idx[0] :])


def test_history_holds_earlier_long_views_only() -> None:
    data = make_interactions(n_events=300)
    frame = _frame(data.events, data)
    ev = {
        n: data.events.column(n).to_numpy()
        for n in ("user_id", "item_id", "timestamp_ms", "long_view")
    }
    for k in range(0, 300, 17):
        earlier = (
            (ev["user_id"] == ev["user_id"][k])
            & (ev["timestamp_ms"] < ev["timestamp_ms"][k])
            & (ev["long_view"] == 1)
        )
        expected = ev["item_id"][earlier][-5:]
        got = frame.hist_item[k][frame.hist_item[k] >= 0]
        np.testing.assert_array_equal(got, expected)


def test_labels_and_batch_shapes() -> None:
    data = make_interactions(n_events=500)
    fb = FeatureBuilder(history_len=5).fit(data.events, data.items, data.users, data.labels)
    frame, _ = fb.transform(data.events)
    cfg = fb.config_
    assert frame.labels.shape == (500, len(cfg.all_tasks))
    assert frame.fields.shape == (500, len(cfg.field_names))
    batch = frame.batch(slice(0, 64))
    assert batch.dense.shape == (64, cfg.n_dense)
    assert batch.sparse["fields"].values.numel() == 64 * len(cfg.field_names)
    assert int(batch.sparse["hist_item"].lengths.sum()) == int((frame.hist_item[:64] >= 0).sum())


def test_transform_before_fit_fails() -> None:
    with pytest.raises(NotFittedError):
        FeatureBuilder().transform(make_interactions(n_events=10).events)


def test_fit_transform_equals_fit_then_transform() -> None:
    data = make_interactions(n_events=1500)
    a, state_a = FeatureBuilder(history_len=5).fit_transform(
        data.events, data.items, data.users, data.labels
    )
    fb = FeatureBuilder(history_len=5).fit(data.events, data.items, data.users, data.labels)
    b, state_b = fb.transform(data.events)
    for name in vars(a):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6, err_msg=name)
    np.testing.assert_array_equal(state_a.hist, state_b.hist)


def test_user_chunk_order_keeps_runs_of_one_users_consecutive_events() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 7, 200)
    order = user_chunk_order(users, 3, rng)
    assert sorted(order.tolist()) == list(range(200))  # every row once
    place = np.argsort(order)  # where each row went
    for u in range(7):
        rows = np.flatnonzero(users == u)  # the user's events, in time order
        for k in range(1, rows.size):
            if k % 3:  # inside a chunk: right after the user's previous event
                assert place[rows[k]] == place[rows[k - 1]] + 1
    assert not np.array_equal(order, np.argsort(users, kind="stable"))  # chunks are shuffled


@pytest.mark.parametrize("user_chunk", [1, 2])
def test_day_order_batches_come_day_by_day_each_day_shuffled(user_chunk: int) -> None:
    data = make_interactions(seed=4)
    frame = _frame(data.events, data)
    batches = list(frame.batches(7, shuffle=True, seed=1, user_chunk=user_chunk, by_day=True))
    ts = np.concatenate([b.request_ids.numpy() for b in batches])  # the rows' timestamps
    assert sorted(ts.tolist()) == sorted(frame.timestamp_ms.tolist())  # every row once
    day = ts // 86_400_000
    assert day.min() < day.max() and np.all(np.diff(day) >= 0)  # days in time order
    first_day = ts[day == day[0]]
    assert not np.all(np.diff(first_day) >= 0)  # within a day: shuffled, not in time order
    plain = np.concatenate(
        [
            b.request_ids.numpy()
            for b in frame.batches(7, shuffle=True, seed=1, user_chunk=user_chunk)
        ]
    )
    assert np.any(np.diff(plain // 86_400_000) < 0)  # without by_day, days are mixed
