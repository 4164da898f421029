"""Item-to-item co-engagement: items positively engaged by the same users close in time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch

from reelrec.errors import ConfigError
from reelrec.models.api import UserContext
from reelrec.models.retrieval._base import BaseRetriever, positives, require

HOUR_MS = 3_600_000


class ItemToItemRetriever(BaseRetriever):
    """Candidates are the co-engaged neighbours of the user's most recent positives.

    Two positives of one user count as co-engaged when they are at most `max_lag` positives
    and `window_hours` apart. The co-engagement count c(a, b) is normalised like a cosine,
    s(a, b) = c(a, b) / sqrt(n_a * n_b) (n = positives of the item), so that a popular item is
    not everyone's neighbour. Only the top `neighbours` per item are kept: memory is
    (items x neighbours), whatever the traffic. A user's score for item j sums s(h, j) over
    the last `history_len` history items h, the most recent weighted most
    (`recency_decay` ** steps back).

    Args:
        neighbours: M, neighbours kept per item.
        window_hours: largest time gap of a co-engaged pair.
        max_lag: largest number of positives between the two items of a pair.
        history_len: how many recent history items seed the candidates.
        recency_decay: weight factor per step back in the history.
        label, name: positive label and retriever name.

    Attributes:
        item_ids_: (V,) items that have neighbours, sorted.
        neighbour_ids_: (V, M) neighbour item ids, best first, -1 padded.
        neighbour_scores_: (V, M) float32 similarities, 0 padded.
    """

    def __init__(
        self,
        *,
        neighbours: int = 50,
        window_hours: float = 24.0,
        max_lag: int = 10,
        history_len: int = 20,
        recency_decay: float = 0.9,
        label: str = "long_view",
        name: str = "item2item",
    ) -> None:
        self.neighbours = neighbours
        self.window_hours = window_hours
        self.max_lag = max_lag
        self.history_len = history_len
        self.recency_decay = recency_decay
        self.label = label
        self.name = name

    def _check_params(self) -> None:
        for field in ("neighbours", "max_lag", "history_len"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"ItemToItemRetriever: {field}={value!r}, expected an int >= 1")
        if not self.window_hours > 0:
            raise ConfigError(
                f"ItemToItemRetriever: window_hours={self.window_hours}, expected > 0"
            )
        if not 0 < self.recency_decay <= 1:
            raise ConfigError(
                f"ItemToItemRetriever: recency_decay={self.recency_decay}, expected in (0, 1]"
            )

    def _pairs(
        self, user: np.ndarray, item: np.ndarray, ts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Co-engaged (a, b) item index pairs, both directions, one per qualifying event pair."""
        order = np.lexsort((ts, user))
        u, it, t = user[order], item[order], ts[order]
        left, right = [], []
        for lag in range(1, self.max_lag + 1):
            ok = (u[lag:] == u[:-lag]) & (t[lag:] - t[:-lag] <= self.window_hours * HOUR_MS)
            ok &= it[lag:] != it[:-lag]
            left.append(it[:-lag][ok])
            right.append(it[lag:][ok])
        a, b = np.concatenate(left), np.concatenate(right)
        return np.concatenate([a, b]), np.concatenate([b, a])

    def _fit(self, events: pa.Table, users: pa.Table) -> None:
        user, item, ts = positives(events, self.label)
        ids, idx = np.unique(item, return_inverse=True)
        n_pos = np.bincount(idx, minlength=ids.size).astype(np.float64)
        a, b = self._pairs(user, idx.astype(np.int64), ts)
        # Count pairs with one int64 key per (a, b): sparse, no dense V x V matrix.
        keys, counts = np.unique(a * ids.size + b, return_counts=True)
        a, b = keys // max(ids.size, 1), keys % max(ids.size, 1)
        sim = counts / np.sqrt(n_pos[a] * n_pos[b])
        # Top-M per source item: sort by (a, -sim, b), then keep the first M of each run.
        order = np.lexsort((b, -sim, a))
        a, b, sim = a[order], b[order], sim[order]
        first = np.searchsorted(a, a, side="left")
        rank = np.arange(a.size) - first
        keep = rank < self.neighbours
        a, b, sim, rank = a[keep], b[keep], sim[keep], rank[keep]
        sources = np.unique(a)
        row = np.searchsorted(sources, a)
        self.item_ids_ = ids[sources]
        self.neighbour_ids_ = np.full((sources.size, self.neighbours), -1, dtype=np.int64)
        self.neighbour_scores_ = np.zeros((sources.size, self.neighbours), dtype=np.float32)
        self.neighbour_ids_[row, rank] = ids[b]
        self.neighbour_scores_[row, rank] = sim

    def _contributions(
        self, histories: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user row, catalog position, score) (C,) of every neighbour of every recent
        history item, in history order: a user's score for an item is the sum of its rows."""
        # Flatten (user row, history item, recency weight) then expand the neighbour lists.
        rows, items, weights = [], [], []
        for r, h in enumerate(histories):
            recent = h[-self.history_len :][::-1]  # most recent first
            rows.append(np.full(recent.size, r, dtype=np.int64))
            items.append(recent)
            weights.append(self.recency_decay ** np.arange(recent.size, dtype=np.float64))
        if not rows or self.item_ids_.size == 0:
            empty = np.empty(0, np.int64)
            return empty, empty, np.empty(0, np.float64)
        rows_a, items_a, w_a = np.concatenate(rows), np.concatenate(items), np.concatenate(weights)
        src = np.clip(np.searchsorted(self.item_ids_, items_a), 0, self.item_ids_.size - 1)
        found = self.item_ids_[src] == items_a
        rows_a, src, w_a = rows_a[found], src[found], w_a[found]
        nb = self.neighbour_ids_[src]  # (H', M)
        pos = self.catalog_.positions(nb.reshape(-1)).reshape(nb.shape)
        contrib = self.neighbour_scores_[src] * w_a[:, None]
        ok = (nb >= 0) & (pos >= 0)
        return np.broadcast_to(rows_a[:, None], nb.shape)[ok], pos[ok], contrib[ok]

    def _score(self, user_ids: np.ndarray, histories: list[np.ndarray], now_ms: int) -> np.ndarray:
        out = np.zeros((user_ids.size, len(self.catalog_)), dtype=np.float64)
        rows, pos, contrib = self._contributions(histories)
        np.add.at(out, (rows, pos), contrib)
        return np.where(out > 0, out, -np.inf)

    def retrieve(self, user: UserContext, k: int) -> np.ndarray:
        """One user's top k, from the few items that have a score (<= history_len x M)
        instead of a dense (N,) score row and a catalog-wide sort; same ids, same order
        (float32 scores, ties by catalog position) as `retrieve_many`."""
        self._check_fitted()
        if k < 0:
            raise ConfigError(f"{self.name}: k={k}, expected k >= 0")
        history = np.asarray(user.history, dtype=np.int64).reshape(-1)
        _, pos, contrib = self._contributions([history])
        # bincount adds in input order, as np.add.at does in _score: identical float64 sums
        cand, inverse = np.unique(pos, return_inverse=True)
        total = np.bincount(inverse, weights=contrib, minlength=cand.size)
        score = total.astype(np.float32)
        keep = (total > 0) & self.catalog_.visible[cand]
        cand, score = cand[keep], score[keep]
        best = np.lexsort((cand, -score))[:k]
        return self.catalog_.item_id[cand[best]].astype(np.int64)

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {
            "item_ids": torch.from_numpy(self.item_ids_.copy()),
            "neighbour_ids": torch.from_numpy(self.neighbour_ids_.copy()),
            "neighbour_scores": torch.from_numpy(self.neighbour_scores_.copy()),
        }, {}

    def _load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.item_ids_ = require(tensors, "item_ids", self.name).astype(np.int64)
        self.neighbour_ids_ = require(tensors, "neighbour_ids", self.name).astype(np.int64)
        self.neighbour_scores_ = require(tensors, "neighbour_scores", self.name).astype(np.float32)
