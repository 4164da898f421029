"""Retrievers: candidate generation for the feed (popular, trending, item-to-item, two-tower).

Every retriever satisfies `reelrec.models.api.Retriever` and, scikit-learn style, has
`fit(events, items, users) -> self`, `retrieve_many(user_ids, histories, now_ms, k)`,
`state()` and `from_state(tensors, meta, catalog_items)` (safetensors + JSON, no pickle).
"""

from reelrec.models.retrieval._base import BaseRetriever, top_k
from reelrec.models.retrieval.blend import DEFAULT_WEIGHTS, BlendRetriever, blend
from reelrec.models.retrieval.item2item import ItemToItemRetriever
from reelrec.models.retrieval.popular import PopularRetriever, TrendingRetriever, find_trending
from reelrec.models.retrieval.two_tower import (
    ItemTower,
    TwoTowerRetriever,
    UserTower,
    history_before,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "BaseRetriever",
    "BlendRetriever",
    "ItemToItemRetriever",
    "ItemTower",
    "PopularRetriever",
    "TrendingRetriever",
    "find_trending",
    "TwoTowerRetriever",
    "UserTower",
    "blend",
    "history_before",
    "top_k",
]
