"""Popularity retrievers: exact recent counts, and time-decayed trending scores."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from reelrec.errors import ConfigError, DataError
from reelrec.models.retrieval._base import (
    BaseRetriever,
    broadcast_rows,
    per_item,
    positives,
    require,
)

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


class PopularRetriever(BaseRetriever):
    """The same list for everyone: items by exact count of positives in a recent window.

    The fallback for cold users. The window ends at the last event seen by `fit`.

    Args:
        window_days: count positives of the last `window_days` days (None = all of `fit`).
        label: the positive label (default long_view).
        name: retriever name (model files, metrics).

    Attributes:
        counts_: (N,) float64 positives per catalog item in the window.

    Example::

        pop = PopularRetriever(window_days=7).fit(events, items, users)
        pop.retrieve(UserContext(user_id=1, now_ms=0), k=50)
    """

    def __init__(
        self, *, window_days: float | None = 7.0, label: str = "long_view", name: str = "popular"
    ) -> None:
        self.window_days = window_days
        self.label = label
        self.name = name

    def _check_params(self) -> None:
        if self.window_days is not None and not self.window_days > 0:
            raise ConfigError(
                f"PopularRetriever: window_days={self.window_days}, expected > 0 or None"
            )

    user_independent = True

    def _fit(self, events: pa.Table, users: pa.Table) -> None:
        self._invalidate_ranking()
        _, item, ts = positives(events, self.label)
        if self.window_days is not None and ts.size:
            keep = ts >= ts.max() - self.window_days * DAY_MS
            item = item[keep]
        pos = self.catalog_.positions(item)
        self.counts_ = np.bincount(pos[pos >= 0], minlength=len(self.catalog_)).astype(np.float64)

    def _score(self, user_ids: np.ndarray, histories: list[np.ndarray], now_ms: int) -> np.ndarray:
        return broadcast_rows(self.counts_, user_ids.size)

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        seen = self.counts_ > 0
        return {
            "item_ids": torch.from_numpy(self.catalog_.item_id[seen].copy()),
            "counts": torch.from_numpy(self.counts_[seen].copy()),
        }, {}

    def _load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self._invalidate_ranking()
        ids = require(tensors, "item_ids", self.name)
        self.counts_ = per_item(ids, require(tensors, "counts", self.name), self.catalog_, 0.0)


class TrendingRetriever(BaseRetriever):
    """Time-decayed popularity: every positive adds 0.5 ** (age / half-life) to its item.

    The half-life of 12 h was chosen on KuaiRand (train 04-25..05-01, evaluate 05-02..05-04):
    6 h to 24 h gave the best Recall@20 (.098 to .100 against .091 for exact 7-day counts),
    longer ones drift back to plain popularity. `partial_fit(events)` folds new events in
    (live updates): scores are stored at a reference time `ref_ms_` (the latest event seen)
    and decayed forward when newer events arrive, so the order of calls does not matter.

    Args:
        half_life_hours: the decay half-life.
        label: the positive label (default long_view).
        name: retriever name.

    Attributes:
        item_ids_: (M,) every item id with a positive so far (the catalog may gain items).
        scores_: (M,) float64 decayed counts at `ref_ms_`.
        ref_ms_: reference time of `scores_` (epoch ms).
    """

    def __init__(
        self, *, half_life_hours: float = 12.0, label: str = "long_view", name: str = "trending"
    ) -> None:
        self.half_life_hours = half_life_hours
        self.label = label
        self.name = name

    def _check_params(self) -> None:
        if not (isinstance(self.half_life_hours, (int, float)) and self.half_life_hours > 0):
            raise ConfigError(
                f"TrendingRetriever: half_life_hours={self.half_life_hours}, expected > 0"
            )

    user_independent = True  # decay multiplies every item's score by the same factor

    def _fit(self, events: pa.Table, users: pa.Table) -> None:
        self.item_ids_ = np.empty(0, dtype=np.int64)
        self.scores_ = np.empty(0, dtype=np.float64)
        self.ref_ms_ = 0
        self._add(events)

    def partial_fit(self, events: pa.Table, items: pa.Table | None = None) -> TrendingRetriever:
        """Fold in new events (any order relative to earlier calls); `items` replaces the catalog.

        The first call on an unfitted retriever needs `items`.
        """
        if items is not None or not hasattr(self, "catalog_"):
            if items is None:
                raise DataError("items", "the first partial_fit needs the item table (items=)")
            from reelrec.models.api import ItemCatalog

            self._check_params()
            self.catalog_ = ItemCatalog(items)
            self._invalidate_ranking()
        if not hasattr(self, "scores_"):
            self.item_ids_ = np.empty(0, dtype=np.int64)
            self.scores_ = np.empty(0, dtype=np.float64)
            self.ref_ms_ = 0
        self._add(events)
        return self

    def _decay(self, age_ms: np.ndarray | float) -> np.ndarray | float:
        return np.exp2(-np.asarray(age_ms, dtype=np.float64) / (self.half_life_hours * HOUR_MS))

    def _add(self, events: pa.Table) -> None:
        _, item, ts = positives(events, self.label)
        if item.size == 0:
            return
        self._invalidate_ranking()
        ref = max(int(ts.max()), self.ref_ms_) if self.scores_.size else int(ts.max())
        old = self.scores_ * self._decay(ref - self.ref_ms_) if self.scores_.size else self.scores_
        ids = np.concatenate([self.item_ids_, item])
        weights = np.concatenate([old, self._decay(ref - ts)])
        uniq, inv = np.unique(ids, return_inverse=True)
        self.item_ids_ = uniq
        self.scores_ = np.bincount(inv, weights=weights, minlength=uniq.size).astype(np.float64)
        self.ref_ms_ = ref

    def scores_at(self, now_ms: int) -> np.ndarray:
        """(N,) decayed scores over catalog positions at `now_ms` (0 for items never seen)."""
        self._check_fitted()
        base = per_item(self.item_ids_, self.scores_, self.catalog_, 0.0)
        return base * float(self._decay(max(now_ms - self.ref_ms_, 0)))

    def _score(self, user_ids: np.ndarray, histories: list[np.ndarray], now_ms: int) -> np.ndarray:
        # Ordering is time-invariant (one factor for all items), but keep the scale honest
        # for blends; float32 would underflow after weeks, so rescale to the max.
        s = self.scores_at(now_ms)
        s = s / s.max() if s.size and s.max() > 0 else s
        return broadcast_rows(s, user_ids.size)

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {
            "item_ids": torch.from_numpy(self.item_ids_.copy()),
            "scores": torch.from_numpy(self.scores_.copy()),
        }, {"ref_ms": int(self.ref_ms_)}

    def _load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self._invalidate_ranking()
        self.item_ids_ = require(tensors, "item_ids", self.name).astype(np.int64)
        self.scores_ = require(tensors, "scores", self.name).astype(np.float64)
        self.ref_ms_ = int(meta["ref_ms"])


def find_trending(retrievers: Iterable[object]) -> TrendingRetriever | None:
    """The trending retriever among a model's retrievers, if it has one."""
    return next((r for r in retrievers if isinstance(r, TrendingRetriever)), None)
