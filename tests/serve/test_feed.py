"""GET /v1/feed on a trained model: page shape, retrievers, every filter, re-rank, cold users."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from reelrec.serve.pipeline import FALLBACK

UNKNOWN_USER = 987_654_321_987


@pytest.fixture(scope="module")
def known_user(sim_dir: Path) -> int:
    users = pq.read_table(sim_dir / "users.parquet").column("user_id").to_pylist()
    events = pq.read_table(sim_dir / "events.parquet", columns=["user_id"]).column("user_id")
    counts = np.bincount(np.searchsorted(np.sort(users), events.to_numpy()))
    return int(np.sort(users)[int(np.argmax(counts))])  # the most active user


def feed(client: TestClient, user_id: int, n: int = 20, **params: Any) -> dict[str, Any]:
    r = client.get("/v1/feed", params={"user_id": user_id, "n": n, **params})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_feed_page_shape(client: TestClient, feed_model: Any, known_user: int) -> None:
    body = feed(client, known_user, n=15)
    assert body["user_id"] == known_user and body["count"] == len(body["items"]) == 15
    assert body["model_version"] == feed_model.version
    ids = [it["item_id"] for it in body["items"]]
    assert len(set(ids)) == len(ids)
    names = {r.name for r in feed_model.retrievers} | {FALLBACK}
    assert {it["retriever"] for it in body["items"]} <= names
    t = body["timing"]
    assert all(t[k] >= 0 for k in ("retrieve_ms", "filter_ms", "rank_ms", "rerank_ms"))
    assert t["total_ms"] >= t["rank_ms"]
    c = body["candidates"]
    assert c["retrieved"] >= c["after_filter"] >= c["ranked"] >= c["returned"] == 15
    assert all("tasks" not in it for it in body["items"])
    # Catalog fields match the model's catalog.
    cat = feed_model.catalog
    pos = cat.positions(np.array(ids))
    assert (pos >= 0).all()
    assert [it["author_id"] for it in body["items"]] == cat.author_id[pos].tolist()
    assert [it["duration_ms"] for it in body["items"]] == cat.duration_ms[pos].tolist()


def test_feed_scores_are_the_rankers(client: TestClient, feed_model: Any) -> None:
    """Re-scoring the page with the model gives the same scores (cold user: no history)."""
    from reelrec.models.api import UserContext

    user = UNKNOWN_USER + 1
    body = feed(client, user, n=10, debug="true")
    ids = np.array([it["item_id"] for it in body["items"]])
    out = feed_model.rank(UserContext(user_id=user, now_ms=_now_ms()), ids)
    np.testing.assert_allclose(
        [it["score"] for it in body["items"]], out.score, rtol=1e-3, atol=1e-4
    )
    # debug=true: every per-task prediction the model makes, per item, in [0, 1] for probabilities.
    for it in body["items"]:
        assert set(it["tasks"]) == set(out.tasks)
    first = body["items"][0]["tasks"]
    for name, values in out.tasks.items():
        assert first[name] == pytest.approx(float(values[0]), rel=1e-3, abs=1e-4)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def test_unknown_user_gets_cold_start_feed(client: TestClient) -> None:
    body = feed(client, UNKNOWN_USER, n=20)
    assert body["cold_start"] is True and body["count"] == 20


def test_served_items_are_not_served_again(client: TestClient, known_user: int) -> None:
    first = {it["item_id"] for it in feed(client, known_user, n=30)["items"]}
    second = feed(client, known_user, n=30)
    assert first.isdisjoint({it["item_id"] for it in second["items"]})
    assert second["filtered"]["seen"] >= 1


def test_watched_items_are_filtered(client: TestClient) -> None:
    user = UNKNOWN_USER + 2
    target = feed(client, user + 1, n=5)["items"][0]["item_id"]  # what a cold user would get
    r = client.post("/v1/events", json={"events": [
        {"user_id": user, "item_id": target, "timestamp_ms": _now_ms(), "watch_ms": 9000,
         "duration_ms": 10000, "long_view": 1},
    ]})  # fmt: skip
    assert r.json()["accepted"] == 1
    body = feed(client, user, n=50)
    assert target not in {it["item_id"] for it in body["items"]}
    assert body["cold_start"] is False  # the long view started the user's history


def test_hidden_items_are_never_served(client: TestClient, feed_model: Any) -> None:
    cat = feed_model.catalog
    assert (~cat.visible).any(), "the simulated catalog should hold hidden items"
    hidden = set(cat.item_id[~cat.visible].tolist())
    for user in range(UNKNOWN_USER + 10, UNKNOWN_USER + 14):
        body = feed(client, user, n=200)
        assert hidden.isdisjoint(it["item_id"] for it in body["items"])


def test_blocked_author_disappears(client: TestClient) -> None:
    user = UNKNOWN_USER + 20
    author = feed(client, UNKNOWN_USER + 21, n=5)["items"][0]["author_id"]
    r = client.post("/v1/blocks", json={"user_id": user, "author_id": author})
    assert r.status_code == 200 and r.json()["blocked"] is True
    body = feed(client, user, n=100)
    assert author not in {it["author_id"] for it in body["items"]}


def test_hate_blocks_the_items_author(client: TestClient) -> None:
    user = UNKNOWN_USER + 30
    item = feed(client, UNKNOWN_USER + 31, n=5)["items"][0]
    client.post("/v1/events", json={"events": [
        {"user_id": user, "item_id": item["item_id"], "timestamp_ms": _now_ms(), "is_hate": 1}
    ]})  # fmt: skip
    body = feed(client, user, n=100)
    assert item["author_id"] not in {it["author_id"] for it in body["items"]}
    assert body["filtered"]["blocked_author"] >= 1


def test_page_respects_author_and_topic_caps(client: TestClient, feed_model: Any) -> None:
    settings = client.app.state.runtime.settings  # type: ignore[attr-defined]
    n = 40
    body = feed(client, UNKNOWN_USER + 40, n=n)
    authors = np.array([it["author_id"] for it in body["items"]])
    assert np.unique(authors, return_counts=True)[1].max() <= settings.max_per_author
    cat = feed_model.catalog
    topics = cat.first_tag(cat.positions(np.array([it["item_id"] for it in body["items"]])))
    cap = math.ceil(settings.max_topic_share * n)
    # Hundreds of candidates over many topics: the cap never needs relaxing here.
    assert body["count"] == n
    assert np.unique(topics[topics >= 0], return_counts=True)[1].max() <= cap


def test_items_are_ordered_by_adjusted_score_within_caps(client: TestClient) -> None:
    body = feed(client, UNKNOWN_USER + 50, n=10)
    adjusted = [it["score"] + it["boost"] for it in body["items"]]
    assert adjusted[0] == max(adjusted)
    assert all(it["boost"] >= 0 for it in body["items"])


def test_max_page_size(client: TestClient) -> None:
    body = feed(client, UNKNOWN_USER + 60, n=200)
    assert 0 < body["count"] <= 200


def test_fallback_fills_a_page_the_retrievers_cannot(feed_model: Any) -> None:
    """With 3 candidates per retriever the model alone cannot fill 30 slots: the freshest
    visible items fill the rest, labelled `fallback`, and filtered like the others."""
    from reelrec.serve.pipeline import FeedPipeline, PipelineConfig, RerankConfig
    from reelrec.serve.state import UserSnapshot

    cat = feed_model.catalog
    pipe = FeedPipeline(
        feed_model, PipelineConfig(per_retriever_k=3, rerank=RerankConfig(max_per_author=100))
    )
    freshest = cat.item_id[cat.visible][np.argmax(cat.upload_ms[cat.visible])]
    empty = np.empty(0, np.int64)
    seen = UserSnapshot(True, empty, np.array([freshest]), empty)
    result = pipe.recommend(UNKNOWN_USER, 30, seen, _now_ms())
    assert result.item_ids.size == 30
    assert FALLBACK in result.retrievers
    assert result.counts["retrieved"] > 3 * len(feed_model.retrievers)
    assert freshest not in result.item_ids  # the fallback is filtered too
    assert cat.visible[cat.positions(result.item_ids)].all()


def test_trend_boost_follows_the_models_trending_retriever(feed_model: Any) -> None:
    """The boost reads the trending retriever's counts: at weight 0 a page gets the
    freshness boost alone; at 0.5 its items get more, where the retriever has counts."""
    from reelrec.models.retrieval.popular import TrendingRetriever
    from reelrec.serve.pipeline import FeedPipeline, PipelineConfig, RerankConfig
    from reelrec.serve.state import UserSnapshot

    trending = next(r for r in feed_model.retrievers if isinstance(r, TrendingRetriever))
    empty = np.empty(0, np.int64)
    snap = UserSnapshot(True, empty, empty, empty)
    now = trending.ref_ms_ + 3_600_000  # an hour after the counts (months later: all ~0)

    def page(weight: float) -> Any:
        cfg = PipelineConfig(rerank=RerankConfig(trend_weight=weight))
        return FeedPipeline(feed_model, cfg).recommend(UNKNOWN_USER, 20, snap, now)

    off, on = page(0.0), page(0.5)
    assert trending.scores_at(now)[on.positions].max() > 0
    # at weight 0.5 each item's boost exceeds its freshness boost by 0.5 * span * trend share
    only_fresh = {i: b for i, b in zip(off.item_ids.tolist(), off.boosts.tolist(), strict=True)}
    extra = [b - only_fresh[i] for i, b in zip(on.item_ids.tolist(), on.boosts.tolist(), strict=True)
             if i in only_fresh]  # fmt: skip
    assert extra and all(e >= -1e-6 for e in extra) and max(extra) > 0
