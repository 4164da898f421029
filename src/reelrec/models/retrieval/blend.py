"""Rank fusion of several fitted retrievers, for offline evaluation of a combination.

The feed server merges candidate lists itself; this is the same idea in one object so the
retrieval protocol can score the mix. Weighted reciprocal-rank fusion: an item's fused score
is sum_r w_r / (offset + rank_r), rank_r its 1-based rank in retriever r's list (absent: 0).
Rank fusion needs no common score scale, which popularity counts and cosine similarities
lack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reelrec.errors import ConfigError
from reelrec.models.api import UserContext

# Default weights by retriever name, chosen on KuaiRand (see benchmarks/retrieval_bench.py).
DEFAULT_WEIGHTS: dict[str, float] = {
    "two_tower": 1.0,
    "trending": 1.0,
    "item2item": 0.3,
    "popular": 0.0,
}


@dataclass
class BlendRetriever:
    """`retrievers` fused with `weights`; every member must already be fitted.

    Each member contributes its top `depth * k` items (depth >= 1).
    """

    retrievers: Sequence[Any]
    weights: Sequence[float]
    offset: float = 10.0
    depth: int = 2
    name: str = field(default="blend")

    def __post_init__(self) -> None:
        if len(self.retrievers) != len(self.weights) or not self.retrievers:
            raise ConfigError(
                f"blend: {len(self.retrievers)} retrievers but {len(self.weights)} weights"
            )
        if any(w < 0 for w in self.weights) or not any(w > 0 for w in self.weights):
            raise ConfigError(f"blend: weights={list(self.weights)}, expected >= 0, one > 0")
        if self.offset < 0 or self.depth < 1:
            raise ConfigError(f"blend: offset={self.offset} (>= 0), depth={self.depth} (>= 1)")

    def retrieve_many(
        self, user_ids: np.ndarray, histories: list[np.ndarray], now_ms: int, k: int
    ) -> np.ndarray:
        """(U, k) int64 fused item ids best first, -1 padded."""
        user_ids = np.asarray(user_ids, dtype=np.int64).reshape(-1)
        lists, scores = [], []
        for r, w in zip(self.retrievers, self.weights, strict=True):
            if w <= 0:
                continue
            got = np.asarray(r.retrieve_many(user_ids, histories, now_ms, self.depth * k))
            rank = np.arange(1, got.shape[1] + 1, dtype=np.float64)
            lists.append(got)
            scores.append(np.where(got >= 0, w / (self.offset + rank), 0.0))
        ids = np.concatenate(lists, axis=1)  # (U, R * depth * k)
        sc = np.concatenate(scores, axis=1)
        # Sum the contributions of each (row, id): sort ids per row, add runs, take top k.
        order = np.argsort(ids, axis=1, kind="stable")
        ids = np.take_along_axis(ids, order, axis=1)
        sc = np.take_along_axis(sc, order, axis=1)
        start = np.ones_like(ids, dtype=bool)
        start[:, 1:] = ids[:, 1:] != ids[:, :-1]
        run = np.cumsum(start, axis=1) - 1  # run index within the row
        total = np.zeros_like(sc)
        rows = np.broadcast_to(np.arange(ids.shape[0])[:, None], ids.shape)
        np.add.at(total, (rows, run), sc)
        head_ids = np.where(start, ids, -1)
        head_sc = np.where(start & (ids >= 0), np.take_along_axis(total, run, axis=1), -np.inf)
        best = np.argsort(-head_sc, axis=1, kind="stable")[:, :k]
        out = np.take_along_axis(head_ids, best, axis=1)
        out = np.where(np.isfinite(np.take_along_axis(head_sc, best, axis=1)), out, -1)
        if out.shape[1] < k:
            out = np.pad(out, ((0, 0), (0, k - out.shape[1])), constant_values=-1)
        return out.astype(np.int64)

    def retrieve(self, user: UserContext, k: int) -> np.ndarray:
        row = self.retrieve_many(np.array([user.user_id]), [user.history], user.now_ms, k)[0]
        kept: np.ndarray = row[row >= 0]
        return kept


def blend(
    retrievers: Sequence[Any],
    weights: Sequence[float] | None = None,
    offset: float = 10.0,
    name: str = "blend",
) -> BlendRetriever:
    """Fuse fitted retrievers; default weights by name from `DEFAULT_WEIGHTS` (unknown: 1)."""
    if weights is None:
        weights = [DEFAULT_WEIGHTS.get(r.name, 1.0) for r in retrievers]
        if not any(w > 0 for w in weights):
            weights = [1.0] * len(retrievers)
    return BlendRetriever(list(retrievers), list(weights), offset=offset, name=name)
