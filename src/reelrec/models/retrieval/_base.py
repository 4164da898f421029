"""What every retriever shares: the catalog, input checks, batched top-k, state helpers.

A retriever scores catalog positions: `score_many` returns (U, N) float32 scores over the N
catalog items (-inf = not a candidate: hidden items, or items the retriever has nothing to
say about), and `retrieve_many` turns them into (U, k) item ids best first, -1 padded.
Ties break by catalog position, so results are deterministic.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pyarrow as pa
import torch

from reelrec.data.records import EVENT_SCHEMA, ITEM_SCHEMA
from reelrec.errors import ConfigError, DataError, IntegrityError, NotFittedError
from reelrec.models.api import ItemCatalog, UserContext

_NO_HISTORY = np.empty(0, np.int64)
SCORE_CHUNK = 512  # users per scoring block: (512, N) float32 stays small at any catalog size


def check_table(table: pa.Table, schema: pa.Schema, where: str) -> None:
    """DataError naming the first missing column of `schema`."""
    for name in schema.names:
        if name not in table.column_names:
            raise DataError(where, "column is missing", column=name)


def column(table: pa.Table, name: str) -> np.ndarray:
    out: np.ndarray = table.column(name).to_numpy().astype(np.int64)
    return out


def positives(events: pa.Table, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user_id, item_id, timestamp_ms) of the rows with `label` == 1, in table order."""
    check_table(events, EVENT_SCHEMA, "events")
    mask = events.column(label).to_numpy() == 1
    return (
        column(events, "user_id")[mask],
        column(events, "item_id")[mask],
        column(events, "timestamp_ms")[mask],
    )


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(U, N) scores -> (U, k) positions of the k best finite scores, best first, -1 padded.

    Ties break by lower position (a stable sort of the negated scores). A full sort is fine at
    catalog sizes where brute force is (10^4 items); the two-tower model uses FAISS instead.
    """
    kk = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
    best = np.take_along_axis(scores, order, axis=1)
    out = np.where(np.isfinite(best), order, -1)
    if kk < k:
        out = np.pad(out, ((0, 0), (0, k - kk)), constant_values=-1)
    return out.astype(np.int64)


class BaseRetriever:
    """scikit-learn style base: `fit` learns state ending in `_`; `catalog_` is the item set.

    Subclasses implement `_fit`, `_score` and the `_state` / `_load_state` pair.
    """

    name: str = "retriever"
    label: str = "long_view"

    # -- public API ------------------------------------------------------------------------
    def fit(self, events: pa.Table, items: pa.Table, users: pa.Table) -> Self:
        """Learn from `events` (EVENT_SCHEMA, sorted by time); `items` is the catalog."""
        check_table(events, EVENT_SCHEMA, "events")
        check_table(items, ITEM_SCHEMA, "items")
        if "user_id" not in users.column_names:
            raise DataError("users", "column is missing", column="user_id")
        self._check_params()
        ts = column(events, "timestamp_ms")
        if ts.size > 1 and np.any(np.diff(ts) < 0):
            raise DataError("events", "rows must be sorted by time", column="timestamp_ms")
        self.catalog_ = ItemCatalog(items)
        self._fit(events, users)
        return self

    def score_many(
        self, user_ids: np.ndarray, histories: list[np.ndarray], now_ms: int
    ) -> np.ndarray:
        """(U, N) float32 scores over catalog positions; -inf where not a candidate."""
        user_ids = self._check_batch(user_ids, histories)
        hist = [np.asarray(h, dtype=np.int64).reshape(-1) for h in histories]
        scores = self._score(user_ids, hist, int(now_ms)).astype(np.float32, copy=False)
        scores[:, ~self.catalog_.visible] = -np.inf  # hidden or moderated: never served
        return scores

    def retrieve_many(
        self, user_ids: np.ndarray, histories: list[np.ndarray], now_ms: int, k: int
    ) -> np.ndarray:
        """(U, k) int64 item ids best first, -1 padded; unknown users get the fallback list."""
        user_ids = self._check_batch(user_ids, histories, k)
        out = np.full((user_ids.size, k), -1, dtype=np.int64)
        for a in range(0, user_ids.size, SCORE_CHUNK):
            b = min(a + SCORE_CHUNK, user_ids.size)
            pos = top_k(self.score_many(user_ids[a:b], histories[a:b], now_ms), k)
            out[a:b] = np.where(pos >= 0, self.catalog_.item_id[np.maximum(pos, 0)], -1)
        return out

    def retrieve(self, user: UserContext, k: int) -> np.ndarray:
        """Up to k item ids (int64), best first. Never raises for an unknown user."""
        if self.user_independent:
            self._check_batch(np.empty(0, np.int64), [], k)
            return self._ranking()[:k]
        row = self.retrieve_many(np.array([user.user_id]), [user.history], user.now_ms, k)[0]
        kept: np.ndarray = row[row >= 0]
        return kept

    # Retrievers whose ranking is the same for every user and moment (popular; trending,
    # whose time decay scales all items alike) set this: `retrieve` then serves a slice of
    # one ranking computed once per state (`_ranking`) instead of sorting the catalog per call.
    user_independent: bool = False

    def _ranking(self) -> np.ndarray:
        """All candidate ids best first (read-only), computed on first use after a state change
        (subclasses call `_invalidate_ranking` whenever their scores change)."""
        ranked: np.ndarray | None = getattr(self, "_ranking_", None)
        if ranked is None:
            now = int(getattr(self, "ref_ms_", 0))
            row = self.retrieve_many(np.zeros(1, np.int64), [_NO_HISTORY], now, len(self.catalog_))
            ranked = row[0][row[0] >= 0]
            ranked.flags.writeable = False
            self._ranking_ = ranked
        return ranked

    def _invalidate_ranking(self) -> None:
        self._ranking_ = None

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors, JSON-able meta) for a safetensors file; `from_state` rebuilds."""
        self._check_fitted()
        tensors, meta = self._state()
        meta = {"class": type(self).__name__, "params": self.get_params(), **meta}
        return tensors, meta

    @classmethod
    def from_state(
        cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any], catalog_items: pa.Table
    ) -> Self:
        """Rebuild a fitted retriever over `catalog_items` (ITEM_SCHEMA; may hold new items)."""
        if meta.get("class") != cls.__name__:
            raise IntegrityError(
                f"retriever state is for {meta.get('class')!r}, not {cls.__name__}"
            )
        check_table(catalog_items, ITEM_SCHEMA, "catalog_items")
        obj = cls(**meta["params"])
        obj.catalog_ = ItemCatalog(catalog_items)
        obj._load_state(tensors, meta)
        return obj

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (the hyperparameters), JSON-able."""
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in names if n != "device"}

    # -- helpers for subclasses ------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "catalog_"):
            raise NotFittedError(type(self).__name__)

    def _check_batch(
        self, user_ids: np.ndarray, histories: list[np.ndarray], k: int | None = None
    ) -> np.ndarray:
        """The checks every batch entry point shares; returns user_ids as (U,) int64."""
        self._check_fitted()
        if k is not None and k < 0:
            raise ConfigError(f"{self.name}: k={k}, expected k >= 0")
        user_ids = np.asarray(user_ids, dtype=np.int64).reshape(-1)
        if len(histories) != user_ids.size:
            raise ValueError(
                f"{self.name}: {user_ids.size} user_ids but {len(histories)} histories"
            )
        return user_ids

    def _check_params(self) -> None:
        """Validate hyperparameters (called by fit)."""

    def _fit(self, events: pa.Table, users: pa.Table) -> None:
        raise NotImplementedError

    def _score(self, user_ids: np.ndarray, histories: list[np.ndarray], now_ms: int) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        raise NotImplementedError

    def _load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        raise NotImplementedError


def require(tensors: dict[str, torch.Tensor], name: str, owner: str) -> np.ndarray:
    """A tensor of a stored state as numpy; IntegrityError when it is missing."""
    if name not in tensors:
        raise IntegrityError(f"{owner} state: tensor {name!r} is missing")
    return tensors[name].detach().cpu().numpy()


def per_item(ids: np.ndarray, values: np.ndarray, catalog: ItemCatalog, fill: float) -> np.ndarray:
    """Spread values keyed by item id onto catalog positions (N,); `fill` where absent."""
    out = np.full(len(catalog), fill, dtype=np.float64)
    pos = catalog.positions(ids)
    ok = pos >= 0
    out[pos[ok]] = values[ok]
    return out


def broadcast_rows(row: np.ndarray, n_rows: int) -> np.ndarray:
    """(N,) -> (n_rows, N) float32 writable copy."""
    return np.repeat(row.astype(np.float32)[None, :], n_rows, axis=0)
