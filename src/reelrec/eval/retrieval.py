"""Offline retrieval evaluation: full-ranking Recall@K, NDCG@K and HitRate@K.

Protocol (issue 4, the one the peer runs used):

* positives are the distinct items a user long-viewed (long_view == 1) in the evaluation window;
* evaluated users have >= 1 positive in the evaluation window and >= 1 long view in the
  training window;
* every video of the item table is a candidate (full ranking, no sampled negatives), except
  the videos the user long-viewed in the training window, which are removed from the ranked
  list before the cut at K. A positive that is such a repeat stays in the denominator (it is
  unreachable, as in RecBole's full-sort evaluation): the figures are conservative;
* the retriever sees, per user, the long-viewed items of the training window (oldest first) as
  history, and `now_ms` = the start of the evaluation window.

Metrics, per user then averaged over users (P = the user's positives, r = 1-based rank):
    recall@K = |top-K ∩ P| / |P|
    ndcg@K   = sum_{hits} 1 / log2(r + 1)  /  sum_{r=1}^{min(|P|, K)} 1 / log2(r + 1)
    hit@K    = 1 if top-K ∩ P is not empty

Shapes: U = evaluated users, K = list length, N = catalog size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from reelrec.errors import ConfigError, DataError
from reelrec.models.api import ItemCatalog, UserContext

log = logging.getLogger(__name__)


@runtime_checkable
class BatchRetriever(Protocol):
    """A retriever that scores many users at once (what every reelrec retriever has)."""

    name: str

    def retrieve_many(
        self, user_ids: np.ndarray, histories: list[np.ndarray], now_ms: int, k: int
    ) -> np.ndarray: ...


class SingleRetriever(Protocol):
    name: str

    def retrieve(self, user: UserContext, k: int) -> np.ndarray: ...


@dataclass(frozen=True)
class RetrievalMetrics:
    """Averages over `users` evaluated users; each dict maps K -> value."""

    recall: dict[int, float]
    ndcg: dict[int, float]
    hit: dict[int, float]
    users: int
    name: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float | int]:
        """`{"recall@20": ..., "ndcg@20": ..., "hit@20": ..., ..., "users": U}` for JSON."""
        out: dict[str, float | int] = {}
        for k in sorted(self.recall):
            out[f"recall@{k}"] = self.recall[k]
            out[f"ndcg@{k}"] = self.ndcg[k]
            out[f"hit@{k}"] = self.hit[k]
        out["users"] = self.users
        return out


@dataclass(frozen=True)
class EvalSplit:
    """What the protocol hands a retriever and scores against (all aligned on users).

    user_ids (U,), histories[u] (H_u,) item ids oldest first (training-window long views),
    positives: CSR (pos_offsets (U + 1,), pos_items (P,) item ids), now_ms.
    """

    user_ids: np.ndarray
    histories: list[np.ndarray]
    pos_offsets: np.ndarray
    pos_items: np.ndarray
    now_ms: int


def _column(table: pa.Table, name: str, where: str) -> np.ndarray:
    if name not in table.column_names:
        raise DataError(where, "column is missing", column=name)
    out: np.ndarray = table.column(name).to_numpy().astype(np.int64)
    return out


def _grouped(users: np.ndarray, items: np.ndarray, order_key: np.ndarray) -> dict[int, np.ndarray]:
    """user -> items ordered by `order_key` (stable), duplicates kept."""
    order = np.lexsort((order_key, users))
    u, it = users[order], items[order]
    cut = np.flatnonzero(np.diff(u)) + 1
    return {
        int(g[0]): v for g, v in zip(np.split(u, cut), np.split(it, cut), strict=True) if g.size
    }


def build_split(
    train_events: pa.Table, test_events: pa.Table, now_ms: int | None = None
) -> EvalSplit:
    """Select the evaluated users and build their histories and positive sets."""
    tr_u = _column(train_events, "user_id", "train_events")
    tr_i = _column(train_events, "item_id", "train_events")
    tr_t = _column(train_events, "timestamp_ms", "train_events")
    tr_lv = _column(train_events, "long_view", "train_events") == 1
    te_u = _column(test_events, "user_id", "test_events")
    te_i = _column(test_events, "item_id", "test_events")
    te_lv = _column(test_events, "long_view", "test_events") == 1
    if now_ms is None:
        if test_events.num_rows == 0:
            raise DataError("test_events", "no rows in the evaluation window")
        now_ms = int(_column(test_events, "timestamp_ms", "test_events").min())

    hist = _grouped(tr_u[tr_lv], tr_i[tr_lv], tr_t[tr_lv])
    pos_u, pos_i = te_u[te_lv], te_i[te_lv]
    pairs = np.unique(np.stack([pos_u, pos_i], axis=1), axis=0) if pos_u.size else np.empty((0, 2))
    keep = np.isin(pairs[:, 0], np.fromiter(hist.keys(), dtype=np.int64, count=len(hist)))
    pairs = pairs[keep].astype(np.int64)
    user_ids, starts = np.unique(pairs[:, 0], return_index=True)
    offsets = np.append(starts, pairs.shape[0]).astype(np.int64)
    return EvalSplit(
        user_ids=user_ids,
        histories=[hist[int(u)] for u in user_ids],
        pos_offsets=offsets,
        pos_items=pairs[:, 1].copy(),
        now_ms=int(now_ms),
    )


def _retrieve_all(
    retriever: BatchRetriever | SingleRetriever, split: EvalSplit, k: int
) -> np.ndarray:
    """(U, k) int64 item ids best first, -1 padded."""
    if isinstance(retriever, BatchRetriever):
        out = np.asarray(retriever.retrieve_many(split.user_ids, split.histories, split.now_ms, k))
    else:
        out = np.full((split.user_ids.size, k), -1, dtype=np.int64)
        for row, (u, h) in enumerate(zip(split.user_ids, split.histories, strict=True)):
            got = np.asarray(retriever.retrieve(UserContext(int(u), split.now_ms, 0, h), k))[:k]
            out[row, : got.size] = got
    if out.shape != (split.user_ids.size, k):
        raise ValueError(f"{retriever.name}: retrieve_many returned {out.shape}, expected "
                         f"({split.user_ids.size}, {k})")  # fmt: skip
    return out.astype(np.int64)


def clean_ranking(
    ranked: np.ndarray, exclude_rows: np.ndarray, exclude_items: np.ndarray,
    catalog: ItemCatalog, k: int,
) -> np.ndarray:  # fmt: skip
    """Drop excluded, unknown, padded and repeated ids from each row; keep the first k.

    ranked (U, K') item ids; (exclude_rows, exclude_items) pairs (E,) name what each row must
    not contain. Returns (U, k) catalog positions, -1 padded.
    """
    n_items = len(catalog)
    pos = np.where(ranked >= 0, catalog.positions(ranked), -1)
    valid = pos >= 0
    rows = np.arange(ranked.shape[0], dtype=np.int64)[:, None]
    key = rows * (n_items + 1) + pos
    if exclude_rows.size:
        ex_pos = catalog.positions(exclude_items)
        ex_key = exclude_rows * (n_items + 1) + ex_pos
        valid &= ~np.isin(key, ex_key[ex_pos >= 0])
    # A repeated id counts once: keep its first occurrence in the row.
    order = np.argsort(np.where(valid, key, -1), axis=1, kind="stable")
    sk = np.take_along_axis(np.where(valid, key, -1), order, axis=1)
    dup_sorted = np.zeros_like(valid)
    dup_sorted[:, 1:] = (sk[:, 1:] == sk[:, :-1]) & (sk[:, 1:] >= 0)
    dup = np.empty_like(dup_sorted)
    np.put_along_axis(dup, order, dup_sorted, axis=1)
    valid &= ~dup
    first = np.argsort(~valid, axis=1, kind="stable")[:, :k]
    out = np.take_along_axis(np.where(valid, pos, -1), first, axis=1)
    if out.shape[1] < k:
        out = np.pad(out, ((0, 0), (0, k - out.shape[1])), constant_values=-1)
    return out


def ranking_metrics(
    top: np.ndarray, pos_offsets: np.ndarray, pos_items: np.ndarray, ks: tuple[int, ...]
) -> tuple[dict[int, float], dict[int, float], dict[int, float]]:
    """Mean recall@k, ndcg@k, hit@k over users.

    top (U, K) ids best first (-1 = empty slot, never a hit), K >= max(ks); positives as CSR
    (pos_offsets (U + 1,), pos_items (P,)), each user's positives distinct and non-empty.
    """
    n_users = top.shape[0]
    n_pos = np.diff(pos_offsets)
    if n_users == 0:
        raise DataError("test_events", "no user has a positive in both windows: nothing to score")
    if np.any(n_pos <= 0):
        raise ValueError("every evaluated user needs >= 1 positive")
    kmax = max(ks)
    top = top[:, :kmax]
    # Encode (user, item) pairs as one int64 so one np.isin finds every hit.
    span = int(max(top.max(initial=0), pos_items.max(initial=0))) + 2
    rows = np.arange(n_users, dtype=np.int64)
    top_key = np.where(top >= 0, rows[:, None] * span + top + 1, -1)
    pos_key = np.repeat(rows, n_pos) * span + pos_items + 1
    hits = np.isin(top_key, pos_key).astype(np.float64)  # (U, K)
    discount = 1.0 / np.log2(np.arange(2, kmax + 2, dtype=np.float64))  # (K,)
    ideal_cum = np.cumsum(discount)
    recall, ndcg, hit = {}, {}, {}
    for k in ks:
        h = hits[:, :k]
        n_hit = h.sum(axis=1)
        recall[k] = float(np.mean(n_hit / n_pos))
        idcg = ideal_cum[np.minimum(n_pos, k) - 1]
        ndcg[k] = float(np.mean((h * discount[:k]).sum(axis=1) / idcg))
        hit[k] = float(np.mean(n_hit > 0))
    return recall, ndcg, hit


def evaluate_retrieval(
    retriever: BatchRetriever | SingleRetriever,
    train_events: pa.Table,
    test_events: pa.Table,
    items: pa.Table,
    ks: tuple[int, ...] = (20, 50),
    now_ms: int | None = None,
) -> RetrievalMetrics:
    """Score a fitted retriever with the full-ranking protocol (module docstring).

    Args:
        retriever: fitted on `train_events` (or earlier data); `retrieve_many` is used when it
            exists, else `retrieve` per user.
        train_events: EVENT_SCHEMA rows before the evaluation window (histories, exclusions).
        test_events: EVENT_SCHEMA rows of the evaluation window (positives).
        items: ITEM_SCHEMA table: the candidate set.
        ks: cut-offs, each >= 1.
        now_ms: start of the evaluation window; default the first test timestamp.
    Returns:
        RetrievalMetrics with recall/ndcg/hit for every k in `ks`.
    """
    if not ks or min(ks) < 1:
        raise ConfigError(f"ks={ks!r}: expected one or more cut-offs >= 1")
    ks = tuple(sorted(set(int(k) for k in ks)))
    split = build_split(train_events, test_events, now_ms)
    catalog = ItemCatalog(items)
    return evaluate_split(retriever, split, catalog, ks)


def evaluate_split(
    retriever: BatchRetriever | SingleRetriever,
    split: EvalSplit,
    catalog: ItemCatalog,
    ks: tuple[int, ...] = (20, 50),
) -> RetrievalMetrics:
    """`evaluate_retrieval` on a prepared split (reuse one split for many retrievers)."""
    kmax = max(ks)
    n_excl = np.array([h.size for h in split.histories], dtype=np.int64)
    # Ask for enough ids that the top kmax survive removing the user's training long views.
    k_req = int(min(kmax + (n_excl.max(initial=0)), max(len(catalog), kmax)))
    ranked = _retrieve_all(retriever, split, k_req)
    ex_rows = np.repeat(np.arange(split.user_ids.size, dtype=np.int64), n_excl)
    ex_items = np.concatenate(split.histories) if split.histories else np.empty(0, np.int64)
    top_pos = clean_ranking(ranked, ex_rows, ex_items.astype(np.int64), catalog, kmax)
    top_ids = np.where(top_pos >= 0, catalog.item_id[np.maximum(top_pos, 0)], -1)
    recall, ndcg, hit = ranking_metrics(top_ids, split.pos_offsets, split.pos_items, ks)
    return RetrievalMetrics(recall, ndcg, hit, int(split.user_ids.size), retriever.name)
