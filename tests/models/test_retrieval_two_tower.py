"""TwoTowerRetriever: leakage-free history, training, FAISS retrieval, state round trip."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from reelrec.errors import ConfigError, IntegrityError, NotFittedError
from reelrec.models.api import UserContext
from reelrec.models.retrieval import TwoTowerRetriever, history_before
from reelrec.models.retrieval.two_tower import field_ids
from tests.conftest import make_interactions

SMALL = dict(embedding_dim=8, out_dim=8, hidden=16, history_len=5, epochs=2, batch_size=64)


def brute_history(user, item, ts, i, max_len):  # type: ignore[no-untyped-def]
    """The reference: same user, strictly earlier time, in (time, row) order, last max_len."""
    rows = [j for j in range(user.size) if user[j] == user[i] and ts[j] < ts[i]]
    rows.sort(key=lambda j: (ts[j], j))
    return [int(item[j]) for j in rows][-max_len:]


def test_history_before_matches_brute_force_and_never_sees_the_future() -> None:
    rng = np.random.default_rng(0)
    n = 300
    user = rng.integers(0, 8, n)
    ts = np.sort(rng.integers(0, 60, n))  # many ties in time
    item = rng.integers(0, 1000, n)
    hist = history_before(user, item, ts, 4)
    for i in range(n):
        got = [int(x) for x in hist[i] if x >= 0]
        assert got == brute_history(user, item, ts, i, 4)
        assert (hist[i][: 4 - len(got)] == -1).all()  # left-padded
    # Changing every event at or after row i's time leaves row i's history unchanged.
    i = n // 2
    later = ts >= ts[i]
    item2 = np.where(later, item + 5000, item)
    assert history_before(user, item2, ts, 4)[i].tolist() == hist[i].tolist()


def test_field_ids_separate_fields() -> None:
    v = np.arange(100, dtype=np.int64)
    a, b = field_ids(v, 0), field_ids(v, 1)
    assert (a >= 0).all() and np.intersect1d(a, b).size == 0 and np.unique(a).size == 100


@pytest.fixture(scope="module")
def fitted():  # type: ignore[no-untyped-def]
    data = make_interactions(n_events=1500)
    model = TwoTowerRetriever(**SMALL, seed=1).fit(data.events, data.items, data.users)  # type: ignore[arg-type]
    return data, model


def test_fit_learns_and_is_deterministic(fitted) -> None:  # type: ignore[no-untyped-def]
    data, model = fitted
    assert len(model.losses_) == 2 and all(np.isfinite(model.losses_))
    assert model.losses_[1] < model.losses_[0]
    again = TwoTowerRetriever(**SMALL, seed=1).fit(data.events, data.items, data.users)  # type: ignore[arg-type]
    np.testing.assert_array_equal(again.item_vectors_, model.item_vectors_)
    norms = np.linalg.norm(model.item_vectors_, axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)


def test_retrieve_is_faiss_top_k_of_cosine(fitted) -> None:  # type: ignore[no-untyped-def]
    data, model = fitted
    ids = np.array([1000, 1007, 999_999])  # the last user is unknown
    hist = [np.array([5, 18]), np.array([], np.int64), np.array([31])]
    got = model.retrieve_many(ids, hist, 0, 10)
    scores = model.score_many(ids, hist, 0)
    for r in range(3):
        want = model.catalog_.item_id[np.argsort(-scores[r], kind="stable")[:10]]
        np.testing.assert_array_equal(np.sort(got[r]), np.sort(want))
    visible = set(model.catalog_.item_id[model.catalog_.visible].tolist())
    assert set(got.ravel().tolist()) <= visible
    one = model.retrieve(UserContext(999_999, 0, history=hist[2]), 10)
    np.testing.assert_array_equal(one, got[2])


def test_new_items_get_vectors_from_content(fitted) -> None:  # type: ignore[no-untyped-def]
    data, model = fitted
    tensors, meta = model.state()
    new = data.items.slice(0, 1).set_column(0, "item_id", pa.array([424242], pa.int64()))
    back = TwoTowerRetriever.from_state(
        st_load(st_save(tensors)), meta, pa.concat_tables([data.items, new])
    )
    v = back.item_vectors_[-1]
    assert np.isfinite(v).all() and abs(np.linalg.norm(v) - 1) < 1e-5


def test_state_round_trip(fitted) -> None:  # type: ignore[no-untyped-def]
    data, model = fitted
    tensors, meta = model.state()
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    back = TwoTowerRetriever.from_state(st_load(st_save(tensors)), meta, data.items)
    np.testing.assert_array_equal(back.item_vectors_, model.item_vectors_)
    ids = np.array([1000, 1014])
    hist = [np.array([5]), np.array([18, 31])]
    np.testing.assert_array_equal(
        back.retrieve_many(ids, hist, 0, 15), model.retrieve_many(ids, hist, 0, 15)
    )


def test_state_missing_tensor_fails(fitted) -> None:  # type: ignore[no-untyped-def]
    data, model = fitted
    tensors, meta = model.state()
    del tensors["user_fields"]
    with pytest.raises(IntegrityError, match="user_fields"):
        TwoTowerRetriever.from_state(tensors, meta, data.items)


def test_not_fitted_fails() -> None:
    with pytest.raises(NotFittedError):
        TwoTowerRetriever().retrieve(UserContext(1, 0), 5)


def test_bad_params_fails() -> None:
    data = make_interactions(n_events=100)
    with pytest.raises(ConfigError, match="temperature"):
        TwoTowerRetriever(temperature=0).fit(data.events, data.items, data.users)
