"""Pipeline stages on real catalogs: merge, each filter, freshness boost, re-rank rules.

The end-to-end feed through a trained model is in test_feed.py.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from reelrec.data.records import ITEM_SCHEMA
from reelrec.models.api import ItemCatalog
from reelrec.serve.pipeline import (
    RerankConfig,
    filter_candidates,
    freshness_boost,
    merge_candidates,
    rerank,
    trend_boost,
)
from reelrec.serve.state import UserSnapshot

E = np.empty(0, np.int64)
HOUR = 3_600_000


def catalog(n: int = 10, hidden: tuple[int, ...] = ()) -> ItemCatalog:
    ids = np.arange(n) * 10 + 1
    table = pa.Table.from_pydict(
        {
            "item_id": ids,
            "author_id": np.arange(n) % 3 + 500,
            "duration_ms": np.full(n, 10_000),
            "upload_ms": np.full(n, 1_000),
            "music_id": np.zeros(n, np.int64),
            "tags": [[i % 4] for i in range(n)],
            "visible": [int(i) not in hidden for i in ids],
        },
        schema=ITEM_SCHEMA,
    )
    return ItemCatalog(table)


def snap(seen: list[int] = (), blocked: list[int] = ()) -> UserSnapshot:  # type: ignore[assignment]
    return UserSnapshot(True, E, np.array(seen, np.int64), np.array(blocked, np.int64))


def test_merge_is_round_robin_deduplicated_and_keeps_first_retriever() -> None:
    ids, src = merge_candidates([np.array([5, 6, 7]), np.array([6, 8]), np.array([9, 5, 10])])
    # rank 0: 5(r0) 6(r1) 9(r2); rank 1: 6 dup, 8(r1), 5 dup; rank 2: 7(r0), 10(r2)
    assert ids.tolist() == [5, 6, 9, 8, 7, 10]
    assert src.tolist() == [0, 1, 2, 1, 0, 2]


def test_merge_of_nothing() -> None:
    ids, src = merge_candidates([np.array([], np.int64)])
    assert ids.size == 0 and src.size == 0
    assert merge_candidates([])[0].size == 0


def test_filter_unknown_items() -> None:
    keep, pos, removed = filter_candidates(catalog(), np.array([1, 2, 11]), snap())
    assert keep.tolist() == [True, False, True] and pos[1] == -1
    assert removed["unknown_item"] == 1


def test_filter_not_visible() -> None:
    keep, _, removed = filter_candidates(catalog(hidden=(11,)), np.array([1, 11, 21]), snap())
    assert keep.tolist() == [True, False, True] and removed["not_visible"] == 1


def test_filter_seen() -> None:
    keep, _, removed = filter_candidates(catalog(), np.array([1, 11, 21]), snap(seen=[21, 999]))
    assert keep.tolist() == [True, True, False] and removed["seen"] == 1


def test_filter_blocked_authors() -> None:
    # authors: item 1 -> 500, 11 -> 501, 21 -> 502, 31 -> 500
    keep, _, removed = filter_candidates(catalog(), np.array([1, 11, 21, 31]), snap(blocked=[500]))
    assert keep.tolist() == [False, True, True, False] and removed["blocked_author"] == 2


def test_filter_counts_each_candidate_once() -> None:
    cat = catalog(hidden=(1,))
    _, _, removed = filter_candidates(cat, np.array([1, 11]), snap(seen=[1, 11], blocked=[500]))
    assert removed == {"unknown_item": 0, "not_visible": 1, "seen": 1, "blocked_author": 0}


def test_freshness_boost_halves_per_half_life() -> None:
    cfg = RerankConfig(freshness_weight=0.1, freshness_half_life_h=24)
    scores = np.array([0.0, 1.0, 2.0, 0.5], np.float32)  # range 2
    now = 100 * HOUR
    upload = np.array([now, now - 24 * HOUR, now + HOUR, 0])
    boost = freshness_boost(scores, upload, now, cfg)
    assert boost.tolist() == pytest.approx([0.2, 0.1, 0.2, 0.0])


def test_freshness_boost_off() -> None:
    boost = freshness_boost(
        np.array([1.0, 2.0]), np.array([5, 5]), 10, RerankConfig(freshness_weight=0)
    )
    assert boost.tolist() == [0.0, 0.0]


def test_trend_boost_is_proportional_to_the_trend() -> None:
    scores = np.array([0.0, 1.0, 2.0], np.float32)  # range 2
    boost = trend_boost(scores, np.array([0.0, 5.0, 10.0]), RerankConfig(trend_weight=0.2))
    assert boost.tolist() == pytest.approx([0.0, 0.2, 0.4])


@pytest.mark.parametrize(("weight", "trend"), [(0.0, [3.0, 1.0]), (0.2, [0.0, 0.0])])
def test_trend_boost_off(weight: float, trend: list[float]) -> None:
    boost = trend_boost(np.array([1.0, 2.0]), np.array(trend), RerankConfig(trend_weight=weight))
    assert boost.tolist() == [0.0, 0.0]


def test_rerank_caps_items_per_author() -> None:
    rng = np.random.default_rng(0)
    score = rng.random(60)
    author = rng.integers(0, 5, 60)
    topic = np.full(60, -1)
    page = rerank(score, author, topic, 10, RerankConfig(max_per_author=2))
    assert len(page) == 10
    assert np.bincount(author[page]).max() <= 2
    # Within the cap it is greedy by score: the best item of each author is on the page.
    for a in range(5):
        assert np.flatnonzero(author == a)[np.argmax(score[author == a])] in page


def test_rerank_author_cap_is_hard_even_if_page_is_short() -> None:
    page = rerank(
        np.array([3.0, 2.0, 1.0]), np.array([7, 7, 7]), np.array([-1] * 3), 3, RerankConfig()
    )
    assert page.tolist() == [0, 1]


def test_rerank_spreads_topics() -> None:
    n = 9
    # 30 items on topic 0 score best, 30 on topics 1..3 below; all distinct authors.
    score = np.concatenate([np.linspace(2, 1.5, 30), np.linspace(1, 0.5, 30)])
    topic = np.concatenate([np.zeros(30, np.int64), np.arange(30) % 3 + 1])
    page = rerank(score, np.arange(60), topic, n, RerankConfig(max_topic_share=0.34))
    cap = math.ceil(0.34 * n)
    assert len(page) == n
    assert np.bincount(topic[page]).max() <= cap
    assert (topic[page] == 0).sum() == cap  # as many of the best topic as allowed
    assert page[:cap].tolist() == list(range(cap))  # page order follows score


def test_rerank_relaxes_topic_cap_rather_than_return_a_short_page() -> None:
    score = np.array([5.0, 4.0, 3.0, 2.0])
    page = rerank(score, np.arange(4), np.zeros(4, np.int64), 4, RerankConfig(max_topic_share=0.25))
    assert page.tolist() == [0, 1, 2, 3]


def test_rerank_untagged_items_are_exempt_from_topic_cap() -> None:
    page = rerank(
        np.arange(6, 0, -1.0), np.arange(6), np.full(6, -1), 6, RerankConfig(max_topic_share=0.1)
    )
    assert page.tolist() == list(range(6))


def test_rerank_freshness_can_lift_a_new_item() -> None:
    cfg = RerankConfig(freshness_weight=2.0, freshness_half_life_h=1)  # boost 0.2 vs gap 0.1
    scores = np.array([1.0, 0.9], np.float32)
    boost = freshness_boost(scores, np.array([1, 10 * HOUR]), 10 * HOUR, cfg)
    page = rerank(scores + boost, np.array([1, 2]), np.array([-1, -1]), 2, cfg)
    assert page.tolist() == [1, 0]
