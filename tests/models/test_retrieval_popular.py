"""PopularRetriever and TrendingRetriever on tiny hand-made and generated data."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from reelrec.errors import ConfigError, DataError, NotFittedError
from reelrec.models.api import UserContext
from reelrec.models.retrieval import PopularRetriever, TrendingRetriever
from tests.conftest import make_interactions
from tests.eval.test_retrieval import events, items

HOUR = 3_600_000


def users() -> pa.Table:
    return pa.table({"user_id": pa.array([1, 2, 3], pa.int64())})


def roundtrip(r, cat):  # type: ignore[no-untyped-def]
    """state() through real safetensors bytes and back."""
    tensors, meta = r.state()
    return type(r).from_state(st_load(st_save(tensors)), meta, cat)


def test_popular_counts_positives_in_the_window() -> None:
    ev = events([(1, 10, 0, 1), (3, 40, 0, 1), (1, 40, 9 * 24 * HOUR, 1),
                 (2, 20, 10 * 24 * HOUR, 1), (3, 20, 10 * 24 * HOUR, 1),
                 (1, 30, 10 * 24 * HOUR, 1), (2, 30, 10 * 24 * HOUR, 0)])  # fmt: skip
    r = PopularRetriever(window_days=7).fit(ev, items([10, 20, 30, 40, 50]), users())
    # in the window: 20 x2, 30 x1, 40 x1 (the one on day 9); 10 and 40's day-0 row are too old
    assert r.retrieve(UserContext(1, 0), 3).tolist() == [20, 30, 40]
    assert r.retrieve(UserContext(999, 0), 10).tolist() == [20, 30, 40, 10, 50]  # unknown user
    r_all = PopularRetriever(window_days=None).fit(ev, items([10, 20, 30, 40, 50]), users())
    assert r_all.retrieve(UserContext(1, 0), 2).tolist() == [20, 40]


def test_popular_hides_invisible_items_and_pads() -> None:
    cat = items([10, 20]).set_column(6, "visible", pa.array([True, False]))
    r = PopularRetriever().fit(events([(1, 20, 0, 1)]), cat, users())
    out = r.retrieve_many(np.array([1, 2]), [np.array([10]), np.array([])], 0, 3)
    assert out.tolist() == [[10, -1, -1], [10, -1, -1]]


def test_popular_state_round_trip_on_a_grown_catalog() -> None:
    data = make_interactions()
    r = PopularRetriever().fit(data.events, data.items, data.users)
    back = roundtrip(r, data.items)
    np.testing.assert_array_equal(back.counts_, r.counts_)
    u = UserContext(1000, 0)
    assert back.retrieve(u, 20).tolist() == r.retrieve(u, 20).tolist()
    # a catalog with one more item: it gets count 0, the rest keep theirs
    grown = pa.concat_tables([data.items, data.items.slice(0, 1).set_column(
        0, "item_id", pa.array([123456789], pa.int64()))])  # fmt: skip
    assert roundtrip(r, grown).counts_[-1] == 0


def test_popular_not_fitted_fails() -> None:
    with pytest.raises(NotFittedError):
        PopularRetriever().retrieve(UserContext(1, 0), 5)
    with pytest.raises(NotFittedError):
        PopularRetriever().state()


def test_popular_bad_window_fails() -> None:
    with pytest.raises(ConfigError, match="window_days"):
        PopularRetriever(window_days=0).fit(events([(1, 10, 0, 1)]), items([10]), users())


def test_unsorted_events_fails() -> None:
    with pytest.raises(DataError, match="sorted"):
        PopularRetriever().fit(events([(1, 10, 5, 1), (1, 10, 1, 1)]), items([10]), users())


def test_missing_item_column_fails() -> None:
    with pytest.raises(DataError, match="author_id"):
        PopularRetriever().fit(
            events([(1, 10, 0, 1)]), items([10]).drop_columns(["author_id"]), users()
        )


def test_trending_prefers_recent_positives() -> None:
    # item 10: 3 positives 48 h ago; item 20: 2 positives now. Half-life 12 h:
    # 3 * 0.5**4 = 0.1875 < 2, so 20 leads; with a 1000 h half-life counts win.
    ev = events([(1, 10, 0, 1), (2, 10, 0, 1), (3, 10, 0, 1), (1, 20, 48 * HOUR, 1),
                 (2, 20, 48 * HOUR, 1)])  # fmt: skip
    fast = TrendingRetriever(half_life_hours=12).fit(ev, items([10, 20]), users())
    slow = TrendingRetriever(half_life_hours=1000).fit(ev, items([10, 20]), users())
    assert fast.retrieve(UserContext(1, 48 * HOUR), 2).tolist() == [20, 10]
    assert slow.retrieve(UserContext(1, 48 * HOUR), 2).tolist() == [10, 20]
    np.testing.assert_allclose(fast.scores_at(48 * HOUR), [3 * 0.5**4, 2.0])


def test_trending_partial_fit_equals_fit() -> None:
    data = make_interactions()
    n = data.events.num_rows
    whole = TrendingRetriever().fit(data.events, data.items, data.users)
    part = TrendingRetriever().partial_fit(data.events.slice(0, n // 2), data.items)
    part.partial_fit(data.events.slice(n // 2))
    assert part.ref_ms_ == whole.ref_ms_
    np.testing.assert_allclose(part.scores_at(whole.ref_ms_), whole.scores_at(whole.ref_ms_))
    # an older batch arriving late changes nothing about the reference time
    late = TrendingRetriever().partial_fit(data.events.slice(n // 2), data.items)
    late.partial_fit(data.events.slice(0, n // 2))
    np.testing.assert_allclose(late.scores_at(whole.ref_ms_), whole.scores_at(whole.ref_ms_))


def test_trending_state_round_trip() -> None:
    data = make_interactions()
    r = TrendingRetriever().fit(data.events, data.items, data.users)
    back = roundtrip(r, data.items)
    assert back.ref_ms_ == r.ref_ms_
    u = UserContext(5, r.ref_ms_)
    assert back.retrieve(u, 30).tolist() == r.retrieve(u, 30).tolist()


def test_trending_first_partial_fit_without_items_fails() -> None:
    with pytest.raises(DataError, match="items"):
        TrendingRetriever().partial_fit(events([(1, 10, 0, 1)]))


def test_trending_bad_half_life_fails() -> None:
    with pytest.raises(ConfigError, match="half_life_hours"):
        TrendingRetriever(half_life_hours=-1).fit(events([(1, 10, 0, 1)]), items([10]), users())
