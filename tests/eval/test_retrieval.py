"""Retrieval protocol and metrics: a hand-checked toy case and a brute-force reference."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from reelrec.data.records import EVENT_SCHEMA, ITEM_SCHEMA, LABELS
from reelrec.errors import ConfigError, DataError
from reelrec.eval.retrieval import build_split, evaluate_retrieval, ranking_metrics
from reelrec.models.api import UserContext

A, B, C, D, E, F = 10, 20, 30, 40, 50, 60


def events(rows: list[tuple[int, int, int, int]]) -> pa.Table:
    """rows of (user, item, timestamp, long_view)."""
    n = len(rows)
    cols: dict[str, list[int]] = {
        "user_id": [r[0] for r in rows],
        "item_id": [r[1] for r in rows],
        "timestamp_ms": [r[2] for r in rows],
        "tab": [0] * n, "hour": [0] * n, "watch_ms": [0] * n, "duration_ms": [0] * n,
    }  # fmt: skip
    for label in LABELS:
        cols[label] = [r[3] if label == "long_view" else 0 for r in rows]
    return pa.Table.from_pydict(cols, schema=EVENT_SCHEMA)


def items(ids: list[int]) -> pa.Table:
    n = len(ids)
    return pa.Table.from_pydict(
        {"item_id": ids, "author_id": [1] * n, "duration_ms": [0] * n, "upload_ms": [0] * n,
         "music_id": [0] * n, "tags": [[]] * n, "visible": [True] * n},
        schema=ITEM_SCHEMA,
    )  # fmt: skip


class FixedList:
    """Everyone gets the same list (the `retrieve`-only path of the protocol)."""

    name = "fixed"

    def __init__(self, order: list[int]) -> None:
        self.order = np.array(order, dtype=np.int64)
        self.seen: list[UserContext] = []

    def retrieve(self, user: UserContext, k: int) -> np.ndarray:
        self.seen.append(user)
        return self.order[:k]


class FixedMany(FixedList):
    def retrieve_many(
        self, user_ids: np.ndarray, histories: list[np.ndarray], now_ms: int, k: int
    ) -> np.ndarray:
        out = np.full((len(user_ids), k), -1, dtype=np.int64)
        n = min(k, self.order.size)
        out[:, :n] = self.order[:n]
        return out


def toy() -> tuple[pa.Table, pa.Table, pa.Table]:
    train = events([
        (1, A, 100, 1),  # user 1 long-viewed A: excluded from their ranking
        (1, B, 110, 0),  # an impression is no exclusion
        (2, C, 120, 1),  # user 2 long-viewed C
        (3, D, 130, 0),  # user 3 has no long view in training: not evaluated
    ])  # fmt: skip
    test = events([
        (1, B, 1000, 1), (1, D, 1010, 1), (1, D, 1020, 1),  # D twice: one positive
        (1, E, 1030, 0),
        (2, A, 1000, 1), (2, C, 1040, 1),  # C repeats a training long view: unreachable
        (3, A, 1000, 1),
        (4, A, 1000, 1),  # user 4 is new: not evaluated
    ])  # fmt: skip
    return train, test, items([A, B, C, D, E, F])


def test_protocol_on_a_hand_checked_case() -> None:
    train, test, cat = toy()
    retriever = FixedList([A, B, C, D, E, F])
    m = evaluate_retrieval(retriever, train, test, cat, ks=(1, 3))
    # user 1: ranking without A = B C D E F, positives {B, D}
    #   recall@1 = 1/2, recall@3 = 2/2, ndcg@3 = (1 + 1/log2 4) / (1 + 1/log2 3), hit = 1
    # user 2: ranking without C = A B D E F, positives {A, C} (C unreachable)
    #   recall@1 = 1/2, recall@3 = 1/2, ndcg@1 = 1, ndcg@3 = 1 / (1 + 1/log2 3), hit = 1
    assert m.users == 2
    assert m.recall[1] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert m.recall[3] == pytest.approx((1.0 + 1 / 2) / 2)
    ndcg3_u1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg3_u2 = 1 / (1 + 1 / math.log2(3))
    assert m.ndcg[3] == pytest.approx((ndcg3_u1 + ndcg3_u2) / 2)
    assert m.ndcg[1] == pytest.approx((1.0 + 1.0) / 2)
    assert m.hit[1] == 1.0 and m.hit[3] == 1.0
    # histories are the training long views, oldest first; now = first test timestamp
    by_user = {u.user_id: u for u in retriever.seen}
    assert sorted(by_user) == [1, 2]
    assert by_user[1].history.tolist() == [A] and by_user[2].history.tolist() == [C]
    assert by_user[1].now_ms == 1000
    d = m.as_dict()
    assert d["recall@3"] == m.recall[3] and d["users"] == 2


def test_batch_path_matches_single_path() -> None:
    train, test, cat = toy()
    order = [F, E, D, C, B, A]
    one = evaluate_retrieval(FixedList(order), train, test, cat, ks=(2, 5))
    many = evaluate_retrieval(FixedMany(order), train, test, cat, ks=(2, 5))
    assert one.as_dict() == many.as_dict()


def test_unknown_repeated_and_padded_ids_never_count() -> None:
    train, test, cat = toy()
    # 999 is not in the item table, B repeats, -1 is padding: the lists are B D (user 1,
    # both hits) and B D (user 2, no hit); the protocol asks for 4 + 1 exclusion = 5 ids.
    m = evaluate_retrieval(FixedList([999, B, B, -1, D]), train, test, cat, ks=(4,))
    assert m.recall[4] == pytest.approx((1.0 + 0.0) / 2)


def reference(top: np.ndarray, positives: list[set[int]], k: int) -> tuple[float, float, float]:
    rec, nd, hit = [], [], []
    for row, pos in zip(top, positives, strict=True):
        hits = [1.0 if x in pos else 0.0 for x in row[:k]]
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(pos), k)))
        rec.append(sum(hits) / len(pos))
        nd.append(dcg / idcg)
        hit.append(float(sum(hits) > 0))
    return float(np.mean(rec)), float(np.mean(nd)), float(np.mean(hit))


def test_metrics_match_a_straightforward_reference() -> None:
    rng = np.random.default_rng(3)
    n_users, n_items, kmax = 50, 40, 12
    top = np.stack([rng.permutation(n_items)[:kmax] for _ in range(n_users)]).astype(np.int64)
    top[rng.random(top.shape) < 0.1] = -1  # some empty slots
    positives = [set(rng.choice(n_items, rng.integers(1, 8), replace=False).tolist())
                 for _ in range(n_users)]  # fmt: skip
    offsets = np.cumsum([0] + [len(p) for p in positives])
    flat = np.array([x for p in positives for x in sorted(p)], dtype=np.int64)
    recall, ndcg, hit = ranking_metrics(top, offsets, flat, (1, 5, 12))
    for k in (1, 5, 12):
        r, n, h = reference(top, positives, k)
        assert recall[k] == pytest.approx(r)
        assert ndcg[k] == pytest.approx(n)
        assert hit[k] == pytest.approx(h)


def test_bad_cutoffs_fails() -> None:
    train, test, cat = toy()
    with pytest.raises(ConfigError, match="ks"):
        evaluate_retrieval(FixedList([A]), train, test, cat, ks=(0,))


def test_missing_column_fails() -> None:
    train, test, cat = toy()
    with pytest.raises(DataError, match="long_view"):
        build_split(train.drop_columns(["long_view"]), test)


def test_no_evaluable_user_fails() -> None:
    train, _, cat = toy()
    test = events([(9, A, 1000, 1)])
    with pytest.raises(DataError, match="nothing to score"):
        evaluate_retrieval(FixedList([A]), train, test, cat)
