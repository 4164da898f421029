"""Serving fast paths of the retrievers return exactly what the batched path returns.

`retrieve` (one user, the feed server's call) takes shortcuts: popular and trending slice one
cached ranking, item-to-item scores only the items that have a score. `retrieve_many` is the
plain dense path; both must agree id for id, in order.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from reelrec.models.api import UserContext
from reelrec.models.retrieval import ItemToItemRetriever, PopularRetriever, TrendingRetriever
from tests.conftest import make_interactions


def _dense(r, user: UserContext, k: int) -> list[int]:  # type: ignore[no-untyped-def]
    row = r.retrieve_many(np.array([user.user_id]), [user.history], user.now_ms, k)[0]
    return row[row >= 0].tolist()  # type: ignore[no-any-return]


def _hide(items: pa.Table, ids: np.ndarray) -> pa.Table:
    """The same catalog with some items not visible (moderated)."""
    visible = ~np.isin(items.column("item_id").to_numpy(), ids)
    col = items.schema.get_field_index("visible")
    return items.set_column(col, "visible", pa.array(visible))


def test_item2item_retrieve_equals_retrieve_many() -> None:
    data = make_interactions(n_users=60, n_items=120, n_events=4000, seed=2)
    item_ids = data.items.column("item_id").to_numpy()
    items = _hide(data.items, item_ids[::7])
    r = ItemToItemRetriever(neighbours=8, history_len=6).fit(data.events, items, data.users)
    rng = np.random.default_rng(0)
    for n_hist in (0, 1, 3, 6, 15):
        for _ in range(5):
            hist = rng.choice(np.concatenate([item_ids, [999_999]]), n_hist)  # one unknown id
            user = UserContext(user_id=1, now_ms=0, history=hist)
            for k in (0, 1, 5, 200):
                assert r.retrieve(user, k).tolist() == _dense(r, user, k)


def test_popular_and_trending_retrieve_equal_retrieve_many() -> None:
    data = make_interactions(n_events=3000, seed=4)
    item_ids = data.items.column("item_id").to_numpy()
    items = _hide(data.items, item_ids[::5])
    events = data.events
    ts = events.column("timestamp_ms").to_numpy()
    for r in (PopularRetriever(window_days=2).fit(events, items, data.users),
              TrendingRetriever(half_life_hours=6).fit(events, items, data.users)):  # fmt: skip
        user = UserContext(user_id=3, now_ms=int(ts.max()))
        for k in (0, 3, 40, 500):
            got = r.retrieve(user, k)
            assert got.tolist() == _dense(r, user, k)
            assert not got.flags.writeable  # a shared cached ranking: read-only


def test_trending_ranking_follows_partial_fit() -> None:
    """The cached ranking is dropped when new events change the scores."""
    data = make_interactions(n_events=2000, seed=6)
    events = data.events
    half = events.num_rows // 2
    r = TrendingRetriever().fit(events.slice(0, half), data.items, data.users)
    user = UserContext(user_id=3, now_ms=0)
    before = r.retrieve(user, 10).tolist()
    # many positives on the item ranked last: it must move to the top
    last = int(r.retrieve(user, 10_000)[-1])
    boost = events.slice(half, 50)
    boost = boost.set_column(boost.schema.get_field_index("item_id"), "item_id",
                             pa.array(np.full(50, last, np.int64)))  # fmt: skip
    boost = boost.set_column(boost.schema.get_field_index("long_view"), "long_view",
                             pa.array(np.ones(50, np.int8)))  # fmt: skip
    r.partial_fit(boost)
    after = r.retrieve(user, 10).tolist()
    assert after[0] == last and after != before
    assert after == _dense(
        r, UserContext(3, int(events.column("timestamp_ms").to_numpy().max())), 10
    )


def test_two_tower_retrieve_equals_retrieve_many() -> None:
    from reelrec.models.retrieval import TwoTowerRetriever
    from tests.models.test_retrieval_two_tower import SMALL

    data = make_interactions(n_events=1200, seed=8)
    item_ids = data.items.column("item_id").to_numpy()
    items = _hide(data.items, item_ids[::4])
    r = TwoTowerRetriever(**SMALL, seed=2).fit(data.events, items, data.users)  # type: ignore[arg-type]
    for uid, hist in ((1000, item_ids[:3]), (1007, item_ids[:0]), (999_999, item_ids[5:30])):
        user = UserContext(user_id=uid, now_ms=0, history=hist)
        for k in (0, 1, 10, 10_000):
            assert r.retrieve(user, k).tolist() == _dense(r, user, k)
