"""ItemToItemRetriever: co-engagement neighbours, bounded memory, state round trip."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from reelrec.errors import ConfigError, NotFittedError
from reelrec.models.api import UserContext
from reelrec.models.retrieval import ItemToItemRetriever
from tests.conftest import make_interactions
from tests.eval.test_retrieval import events, items
from tests.models.test_retrieval_popular import users

HOUR = 3_600_000


def co_events():  # type: ignore[no-untyped-def]
    # users 1 and 2 both watch 10 then 20 within an hour; user 3 watches 10 then 30 two days
    # apart (outside a 24 h window); 40 is watched alone.
    return events([
        (1, 10, 0, 1), (2, 10, 0, 1), (3, 10, 0, 1), (1, 20, HOUR, 1), (2, 20, HOUR, 1),
        (2, 50, HOUR + 1, 0), (3, 40, 2 * HOUR, 1), (3, 30, 48 * HOUR, 1),
    ])  # fmt: skip


def test_neighbours_are_co_engaged_items_in_the_window() -> None:
    r = ItemToItemRetriever(window_hours=24).fit(co_events(), items([10, 20, 30, 40, 50]), users())
    # from 10: 20 (2 users, n=3 and 2 -> 2/sqrt(6)) before 40 (1 user -> 1/sqrt(3))
    assert r.retrieve(UserContext(9, 0, history=np.array([10])), 5).tolist() == [20, 40]
    # 30 is 46 h after 40 and 48 h after 10: no neighbours
    assert r.retrieve(UserContext(9, 0, history=np.array([30])), 5).tolist() == []
    # unknown user without history, or with unknown items: empty, no error
    assert r.retrieve(UserContext(9, 0), 5).tolist() == []
    assert r.retrieve(UserContext(9, 0, history=np.array([777])), 5).tolist() == []
    row = r.neighbour_scores_[np.searchsorted(r.item_ids_, 10)]
    np.testing.assert_allclose(row[:2], [2 / np.sqrt(6), 1 / np.sqrt(3)], rtol=1e-6)


def test_recent_history_weighs_more() -> None:
    r = ItemToItemRetriever(window_hours=24, recency_decay=0.5).fit(
        co_events(), items([10, 20, 30, 40, 50]), users()
    )
    # history 20 then 40 (most recent): 40's neighbours (10, weight 1) lead 20's (10 too);
    # 10 is reachable from both; 20 only from 10 (not in history) -> list is [10]
    got = r.retrieve(UserContext(9, 0, history=np.array([20, 40])), 5).tolist()
    assert got[0] == 10


def test_memory_is_bounded_by_neighbours() -> None:
    data = make_interactions(n_events=3000)
    r = ItemToItemRetriever(neighbours=3, window_hours=1e6, max_lag=50).fit(
        data.events, data.items, data.users
    )
    assert r.neighbour_ids_.shape[1] == 3
    assert (r.neighbour_ids_ >= 0).sum(axis=1).max() == 3  # some item is full


def test_state_round_trip() -> None:
    data = make_interactions()
    r = ItemToItemRetriever().fit(data.events, data.items, data.users)
    tensors, meta = r.state()
    back = ItemToItemRetriever.from_state(st_load(st_save(tensors)), meta, data.items)
    assert back.get_params() == r.get_params()
    hist = [data.events.column("item_id").to_numpy()[:k] for k in (0, 3, 9)]
    ids = np.array([1000, 1007, 5])
    np.testing.assert_array_equal(
        back.retrieve_many(ids, hist, 0, 10), r.retrieve_many(ids, hist, 0, 10)
    )


def test_not_fitted_fails() -> None:
    with pytest.raises(NotFittedError):
        ItemToItemRetriever().retrieve_many(np.array([1]), [np.array([1])], 0, 5)


def test_bad_params_fails() -> None:
    with pytest.raises(ConfigError, match="neighbours"):
        ItemToItemRetriever(neighbours=0).fit(co_events(), items([10, 20, 30, 40, 50]), users())
    with pytest.raises(ConfigError, match="recency_decay"):
        ItemToItemRetriever(recency_decay=0).fit(co_events(), items([10, 20, 30, 40, 50]), users())
