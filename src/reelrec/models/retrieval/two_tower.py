"""Two-tower retrieval: a user tower and an item tower meeting in one cosine space.

Shapes: B = batch size, L = history length, E = embedding width, D = output width,
F_u / F_i = number of user profile / extra item fields, N = catalog size.

User tower input: the user's id and profile fields, and the last L long-viewed items before
the example (their ids and authors, mean-pooled over the valid positions, plus the mean of
their tags). Item tower input: item id, author, tags (mean), duration bucket, music id and
any extra int64 item column. Brand-new items have no id row yet (eval mode maps unseen ids to
the zero row), so their vectors come from author, tags and the other content fields.

Training: positives are `label` == 1 events; each batch is scored against the batch's own
items (in-batch sampled softmax). In-batch negatives are drawn in proportion to popularity,
which over-penalises popular items; the logQ correction subtracts log q(item) from each
logit (q = the item's share of positives) so the logits estimate the full softmax
(Yi et al., "Sampling-bias-corrected neural modeling", RecSys 2019). Outputs are
L2-normalised and divided by a temperature. A batch's duplicate positives are masked out as
negatives of each other. History features use only positives with a timestamp strictly
before the example's (`history_before`): no leakage.

Id features go through `reelrec.embedding.EmbeddingCollection` (dynamic tables with fused
row-wise Adam applied inside `loss.backward()`); dense layers use torch.optim.Adam.

Serving: item vectors go into a FAISS `IndexFlatIP` (exact inner product = cosine on unit
vectors). At 10^4 items exact search costs ~1 ms per query on one core and needs no training
or tuning; an IVF or HNSW index pays off only past ~10^6 items.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reelrec.batch import Jagged, KeyedJagged
from reelrec.data.records import ITEM_SCHEMA
from reelrec.device import adam
from reelrec.errors import ConfigError, IntegrityError
from reelrec.models.api import ItemCatalog, UserContext
from reelrec.models.retrieval._base import BaseRetriever, column, positives, require

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
_MISSING = -1  # profile value of a user absent from the user table


# ---------------------------------------------------------------------------------------
# feature helpers (numpy, host side)
# ---------------------------------------------------------------------------------------
def field_ids(values: np.ndarray, field: int) -> np.ndarray:
    """Raw ids of one categorical field, hashed with the field number (splitmix64) so that
    many fields can share one embedding table without their values colliding.

    Returns non-negative int64 of the same shape.
    """
    with np.errstate(over="ignore"):
        x = values.astype(np.int64).view(np.uint64) ^ np.uint64(
            ((field + 1) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        )
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(1)).astype(np.int64)


def duration_bucket(duration_ms: np.ndarray) -> np.ndarray:
    """log2 buckets of whole seconds (0 = unknown duration)."""
    sec = np.maximum(duration_ms, 0) // 1000
    return np.where(duration_ms > 0, 1 + np.floor(np.log2(sec + 1)).astype(np.int64), 0)


def history_before(user: np.ndarray, item: np.ndarray, ts: np.ndarray, max_len: int) -> np.ndarray:
    """For each positive, the user's last `max_len` positives with a strictly earlier timestamp.

    Args:
        user, item, ts: (P,) the positives (any order).
    Returns:
        (P, max_len) item ids, oldest first, LEFT-padded with -1 (most recent at the end).
    """
    p = user.size
    order = np.lexsort((ts, user))
    u, it, t = user[order], item[order], ts[order]
    idx = np.arange(p, dtype=np.int64)
    new_user = np.ones(p, dtype=bool)
    new_user[1:] = u[1:] != u[:-1]
    new_block = new_user.copy()
    new_block[1:] |= t[1:] != t[:-1]
    user_start = np.maximum.accumulate(np.where(new_user, idx, 0)) if p else idx
    block_start = np.maximum.accumulate(np.where(new_block, idx, 0)) if p else idx
    # Positions block_start - max_len .. block_start - 1, valid when >= the user's first row.
    src = block_start[:, None] - max_len + np.arange(max_len)[None, :]
    ok = src >= user_start[:, None]
    hist_sorted = np.where(ok, it[np.clip(src, 0, max(p - 1, 0))], -1)
    out = np.empty_like(hist_sorted)
    out[order] = hist_sorted
    return out


def _jagged(ids: np.ndarray, valid: np.ndarray) -> Jagged:
    """(B, L) ids with a validity mask -> row-major Jagged of the valid ids."""
    return Jagged(torch.from_numpy(ids[valid].astype(np.int64)), torch.from_numpy(valid.sum(1)))


def _single(ids: np.ndarray) -> Jagged:
    return Jagged.from_dense(torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64)))


# ---------------------------------------------------------------------------------------
# modules
# ---------------------------------------------------------------------------------------
def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class UserTower(nn.Module):
    """(B, F_u * E) profile + (B, L, E) history items / authors + (B, E) tags -> (B, D) unit."""

    def __init__(self, n_fields: int, emb_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.net = mlp([(n_fields + 3) * emb_dim, hidden, out_dim])

    def forward(
        self,
        profile: Tensor,
        hist_item: Tensor,
        hist_author: Tensor,
        mask: Tensor,
        hist_tags: Tensor,
    ) -> Tensor:
        w = mask.unsqueeze(-1).float()  # (B, L, 1)
        denom = w.sum(1).clamp(min=1.0)  # (B, 1)
        item_mean = (hist_item * w).sum(1) / denom  # (B, E)
        author_mean = (hist_author * w).sum(1) / denom  # (B, E)
        x = torch.cat([profile, item_mean, author_mean, hist_tags], dim=1)  # (B, (F_u+3) E)
        return F.normalize(self.net(x), dim=-1)


class ItemTower(nn.Module):
    """(B, F_i * E) item id, author, tags, duration bucket and extra fields -> (B, D) unit."""

    def __init__(self, n_fields: int, emb_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.net = mlp([n_fields * emb_dim, hidden, out_dim])

    def forward(self, fields: Tensor) -> Tensor:
        return F.normalize(self.net(fields), dim=-1)


@dataclass
class _ItemFeatures:
    """Per catalog position: author (N,), tags CSR, content fields (N, F_c) hashed ids."""

    item_id: np.ndarray
    author: np.ndarray
    tag_offsets: np.ndarray
    tag_values: np.ndarray
    content: np.ndarray

    @classmethod
    def from_catalog(cls, catalog: ItemCatalog, extra: list[str]) -> _ItemFeatures:
        cols = [duration_bucket(catalog.duration_ms)]
        table = catalog.table
        cols.append(column(table, "music_id"))
        cols += [column(table, name) for name in extra]
        content = np.stack([field_ids(c, f) for f, c in enumerate(cols)], axis=1)
        return cls(
            catalog.item_id, catalog.author_id, catalog.tag_offsets, catalog.tag_values, content
        )

    def tags(self, pos: np.ndarray) -> Jagged:
        """Tags of the items at `pos` (B,) as a Jagged; unknown (-1) positions: no tags."""
        ok = pos >= 0
        start = np.where(ok, self.tag_offsets[np.maximum(pos, 0)], 0)
        end = np.where(ok, self.tag_offsets[np.maximum(pos, 0) + 1], 0)
        lengths = end - start
        idx = np.repeat(start - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        return Jagged(torch.from_numpy(self.tag_values[idx]), torch.from_numpy(lengths))


# ---------------------------------------------------------------------------------------
# retriever
# ---------------------------------------------------------------------------------------
class TwoTowerRetriever(BaseRetriever):
    """Two-tower model trained with logQ-corrected in-batch softmax, served from FAISS.

    Args:
        embedding_dim: E, width of every id embedding.
        out_dim: D, width of the tower outputs.
        hidden: hidden width of each tower's MLP.
        history_len: L, recent positives in the user tower.
        temperature: softmax temperature on cosine logits.
        epochs, batch_size: passes over the positives; in-batch negatives per example = B - 1.
        lr: Adam learning rate of the dense layers.
        embedding_lr: learning rate of the fused row-wise Adam of the id tables.
        use_user_id: give each user an id row (else profile + history only).
        recency_half_life_hours: weight each positive by 0.5 ** (age / this) at the end of the
            training window (None = all equal), to favour what is current.
        seed: seeds the shuffles, dense init and table init.
        device: where the towers and tables live (from reelrec.device.resolve_device).
        label, name: positive label and retriever name.

    Attributes:
        user_ids_: (U,) users with a profile row, sorted; user_fields_: (U, F_u) hashed ids.
        user_columns_, item_columns_: profile and extra item column names used.
        embeddings_, user_tower_, item_tower_: the fitted modules.
        item_vectors_: (N, D) float32 catalog item vectors; index_: FAISS index over them.
        losses_: mean training loss per epoch.
    """

    def __init__(
        self,
        *,
        embedding_dim: int = 16,
        out_dim: int = 32,
        hidden: int = 128,
        history_len: int = 20,
        temperature: float = 0.05,
        epochs: int = 4,
        batch_size: int = 1024,
        lr: float = 2e-3,
        embedding_lr: float = 0.02,
        use_user_id: bool = False,
        recency_half_life_hours: float | None = None,
        seed: int = 0,
        device: torch.device | None = None,
        label: str = "long_view",
        name: str = "two_tower",
    ) -> None:
        self.embedding_dim = embedding_dim
        self.out_dim = out_dim
        self.hidden = hidden
        self.history_len = history_len
        self.temperature = temperature
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.embedding_lr = embedding_lr
        self.use_user_id = use_user_id
        self.recency_half_life_hours = recency_half_life_hours
        self.seed = seed
        self.device = device
        self.label = label
        self.name = name

    # -- configuration ---------------------------------------------------------------------
    def _check_params(self) -> None:
        for field in ("embedding_dim", "out_dim", "hidden", "history_len", "epochs", "batch_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"TwoTowerRetriever: {field}={value!r}, expected an int >= 1")
        for field in ("temperature", "lr", "embedding_lr"):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ConfigError(f"TwoTowerRetriever: {field}={value!r}, expected > 0")
        hl = self.recency_half_life_hours
        if hl is not None and not hl > 0:
            raise ConfigError(f"TwoTowerRetriever: recency_half_life_hours={hl}, expected > 0")

    def _build(self, n_user_fields: int, n_content: int) -> None:
        from reelrec.embedding import EmbeddingCollection, EmbeddingTableConfig

        e = self.embedding_dim
        table = {"dim": e, "optimizer": "adam", "lr": self.embedding_lr, "seed": self.seed}
        tables = [
            EmbeddingTableConfig(name=n, **table)  # type: ignore[arg-type]
            for n in ("item", "author", "tag", "user", "user_field", "item_field")
        ]
        feats = {
            "item_id": "item", "hist_item": "item", "author": "author", "hist_author": "author",
            "tags": "tag", "hist_tags": "tag", "user_id": "user",
        }  # fmt: skip
        feats |= {"profile": "user_field", "content": "item_field"}
        torch.manual_seed(self.seed)
        self.embeddings_ = EmbeddingCollection(tables, feats, device=self.device)
        n_user = n_user_fields + (1 if self.use_user_id else 0)
        self.user_tower_ = UserTower(n_user, e, self.hidden, self.out_dim).to(self.device)
        self.item_tower_ = ItemTower(3 + n_content, e, self.hidden, self.out_dim).to(self.device)

    # -- features --------------------------------------------------------------------------
    def _profile(self, user_ids: np.ndarray) -> np.ndarray:
        """(B, F_u) hashed profile ids; users without a profile get the 'missing' value."""
        n_f = len(self.user_columns_)
        missing = np.empty((user_ids.size, n_f), dtype=np.int64)
        for f in range(n_f):
            missing[:, f] = field_ids(np.full(user_ids.size, _MISSING), f)
        if self.user_ids_.size == 0:
            return missing
        idx = np.clip(np.searchsorted(self.user_ids_, user_ids), 0, self.user_ids_.size - 1)
        found = self.user_ids_[idx] == user_ids
        return np.where(found[:, None], self.user_fields_[idx], missing)

    def _user_vectors(self, user_ids: np.ndarray, hist: np.ndarray) -> Tensor:
        """user_ids (B,), hist (B, L) item ids left-padded with -1 -> (B, D)."""
        prof = self._profile(user_ids)  # (B, F_u)

        kj: dict[str, Jagged] = {}
        if self.use_user_id:
            kj["user_id"] = _single(user_ids)
        hpos = np.where(hist >= 0, self.catalog_.positions(hist), -1)
        valid = hist >= 0
        hist_author = np.where(hpos >= 0, self._items.author[np.maximum(hpos, 0)], -1)
        # One bag of all history tags per user.
        flat = self._items.tags(hpos[valid])
        per_hist = flat.lengths.numpy()
        row_of = np.repeat(np.nonzero(valid)[0], per_hist)
        kj["hist_tags"] = Jagged(
            flat.values, torch.from_numpy(np.bincount(row_of, minlength=hist.shape[0]))
        )
        pooled = self.embeddings_(KeyedJagged(kj), pooling="mean")
        items_seq, mask = self.embeddings_.sequence(
            "hist_item", _jagged(hist, valid), self.history_len
        )
        author_seq, _ = self.embeddings_.sequence(
            "hist_author", _jagged(hist_author, valid), self.history_len
        )
        parts = [self._fields("profile", prof)]  # (B, F_u E): one lookup for all fields
        if self.use_user_id:
            parts.append(pooled["user_id"])
        profile = torch.cat(parts, dim=1)
        vec: Tensor = self.user_tower_(profile, items_seq, author_seq, mask, pooled["hist_tags"])
        return vec

    def _item_vectors(self, pos: np.ndarray) -> Tensor:
        """Catalog positions (B,) -> (B, D)."""
        it = self._items
        kj = {"item_id": _single(it.item_id[pos]), "author": _single(it.author[pos]),
              "tags": it.tags(pos)}  # fmt: skip
        out = self.embeddings_(KeyedJagged(kj), pooling="mean")
        content = self._fields("content", it.content[pos])  # (B, F_c E)
        names = ["item_id", "author", "tags"]
        vec: Tensor = self.item_tower_(torch.cat([out[n] for n in names] + [content], dim=1))
        return vec

    def _fields(self, feature: str, ids: np.ndarray) -> Tensor:
        """(B, F) hashed field ids -> (B, F * E) concatenated rows, one table lookup."""
        b, f = ids.shape
        if f == 0:
            return torch.zeros((b, 0), device=self.embeddings_.device)
        jag = Jagged(torch.from_numpy(ids.reshape(-1)), torch.full((b,), f, dtype=torch.int64))
        emb, _ = self.embeddings_.sequence(feature, jag, f)  # (B, F, E)
        return emb.reshape(b, f * self.embedding_dim)

    # -- fit -------------------------------------------------------------------------------
    def _fit(self, events: pa.Table, users: pa.Table) -> None:
        self.user_columns_ = [c for c in users.column_names if c != "user_id"]
        schema = self.catalog_.table.schema
        self.item_columns_ = [
            c for c in schema.names
            if c not in ITEM_SCHEMA.names and pa.types.is_integer(schema.field(c).type)
        ]  # fmt: skip
        uid = column(users, "user_id")
        order = np.argsort(uid, kind="stable")
        self.user_ids_ = uid[order]
        cols = [column(users, c)[order] for c in self.user_columns_]
        self.user_fields_ = (
            np.stack([field_ids(c, f) for f, c in enumerate(cols)], axis=1)
            if cols else np.empty((uid.size, 0), np.int64)
        )  # fmt: skip
        self._items = _ItemFeatures.from_catalog(self.catalog_, self.item_columns_)
        self._build(len(self.user_columns_), self._items.content.shape[1])

        user, item, ts = positives(events, self.label)
        pos = self.catalog_.positions(item)
        keep = pos >= 0  # an item outside the catalog has no content features
        user, item, ts, pos = user[keep], item[keep], ts[keep], pos[keep]
        hist = history_before(user, item, ts, self.history_len)
        counts = np.bincount(pos, minlength=len(self.catalog_)).astype(np.float64)
        log_q = np.log(counts / max(counts.sum(), 1.0) + 1e-12)
        weight = np.ones(user.size)
        if self.recency_half_life_hours is not None and ts.size:
            weight = np.exp2(-(ts.max() - ts) / (self.recency_half_life_hours * HOUR_MS))
            weight = weight / weight.mean()
        self._train(user, pos, hist, log_q, weight)
        self._index_catalog()

    def _train(
        self,
        user: np.ndarray,
        pos: np.ndarray,
        hist: np.ndarray,
        log_q: np.ndarray,
        weight: np.ndarray,
    ) -> None:
        rng = np.random.default_rng(self.seed)
        dense = list(self.user_tower_.parameters()) + list(self.item_tower_.parameters())
        opt = adam(dense, self.lr)
        self.embeddings_.train()
        self.user_tower_.train()
        self.item_tower_.train()
        self.losses_: list[float] = []
        log_q_t = torch.from_numpy(log_q.astype(np.float32)).to(self.device)
        for epoch in range(self.epochs):
            t0 = time.perf_counter()
            perm = rng.permutation(user.size)
            total, n = 0.0, 0
            for a in range(0, perm.size, self.batch_size):
                b = perm[a : a + self.batch_size]
                if b.size < 2:
                    continue
                loss = self._batch_loss(user[b], pos[b], hist[b], log_q_t, weight[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]  # also applies the tables' fused row-wise Adam
                opt.step()
                total += float(loss.detach()) * b.size
                n += b.size
            self.losses_.append(total / max(n, 1))
            log.info("two-tower epoch %d loss %.4f (%.1fs)", epoch, self.losses_[-1],
                     time.perf_counter() - t0)  # fmt: skip

    def _batch_loss(
        self, user: np.ndarray, pos: np.ndarray, hist: np.ndarray, log_q: Tensor, weight: np.ndarray
    ) -> Tensor:
        u = self._user_vectors(user, hist)  # (B, D)
        v = self._item_vectors(pos)  # (B, D)
        pos_t = torch.from_numpy(pos).to(self.device)
        logits = u @ v.T / self.temperature - log_q[pos_t][None, :]  # (B, B)
        same = pos_t[:, None] == pos_t[None, :]
        eye = torch.eye(pos.size, dtype=torch.bool, device=self.device)
        logits = logits.masked_fill(same & ~eye, float("-inf"))  # a duplicate is no negative
        target = torch.arange(pos.size, device=self.device)
        loss = F.cross_entropy(logits, target, reduction="none")
        w = torch.from_numpy(weight.astype(np.float32)).to(self.device)
        return (loss * w).sum() / w.sum()

    # -- serving ---------------------------------------------------------------------------
    @torch.no_grad()
    def _index_catalog(self) -> None:
        import faiss

        self.embeddings_.eval()
        self.user_tower_.eval()
        self.item_tower_.eval()
        n = len(self.catalog_)
        vecs = [self._item_vectors(np.arange(a, min(a + 4096, n))) for a in range(0, n, 4096)]
        self.item_vectors_ = (
            torch.cat(vecs).float().cpu().numpy()
            if vecs
            else np.zeros((0, self.out_dim), np.float32)
        )
        self._visible_pos = np.flatnonzero(self.catalog_.visible)
        self.index_ = faiss.IndexFlatIP(self.out_dim)
        self.index_.add(np.ascontiguousarray(self.item_vectors_[self._visible_pos]))

    @torch.no_grad()
    def user_vectors(self, user_ids: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        """(U, D) float32 unit user vectors (the last history_len of each history)."""
        self._check_fitted()
        L = self.history_len
        hist = np.full((len(histories), L), -1, dtype=np.int64)
        for r, h in enumerate(histories):
            h = np.asarray(h, dtype=np.int64)[-L:]
            if h.size:
                hist[r, L - h.size :] = h
        out = [self._user_vectors(np.asarray(user_ids[a : a + 4096], np.int64), hist[a : a + 4096])
               for a in range(0, len(histories), 4096)]  # fmt: skip
        if not out:
            return np.zeros((0, self.out_dim), np.float32)
        return torch.cat(out).float().cpu().numpy()

    def _score(self, user_ids: np.ndarray, histories: list[np.ndarray], now_ms: int) -> np.ndarray:
        """(U, N) cosine scores (the brute-force path, for blends and tests)."""
        scores: np.ndarray = self.user_vectors(user_ids, histories) @ self.item_vectors_.T
        return scores

    def retrieve_many(
        self, user_ids: np.ndarray, histories: list[np.ndarray], now_ms: int, k: int
    ) -> np.ndarray:
        """(U, k) item ids from the FAISS index, best first, -1 padded."""
        user_ids = self._check_batch(user_ids, histories, k)
        if k == 0 or user_ids.size == 0:
            return np.full((user_ids.size, k), -1, dtype=np.int64)
        q = np.ascontiguousarray(self.user_vectors(user_ids, histories), dtype=np.float32)
        kk = min(k, self._visible_pos.size)
        out = np.full((user_ids.size, k), -1, dtype=np.int64)
        if kk == 0:
            return out
        _, idx = self.index_.search(q, kk)
        found = idx >= 0
        out[:, :kk] = np.where(
            found, self.catalog_.item_id[self._visible_pos[np.maximum(idx, 0)]], -1
        )
        return out

    def retrieve(self, user: UserContext, k: int) -> np.ndarray:
        """One user's top k (the feed server's call): `retrieve_many` without the (U, k)
        padding and masking round trip; same ids, same order."""
        self._check_fitted()
        if k < 0:
            raise ConfigError(f"{self.name}: k={k}, expected k >= 0")
        kk = min(k, self._visible_pos.size)
        if kk == 0:
            return np.empty(0, np.int64)
        q = self.user_vectors(np.array([user.user_id], np.int64), [user.history])
        _, idx = self.index_.search(np.ascontiguousarray(q, dtype=np.float32), kk)
        found = idx[0][idx[0] >= 0]
        return self.catalog_.item_id[self._visible_pos[found]]

    # -- state -----------------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        emb_t, emb_meta = self.embeddings_.state()
        tensors = {f"emb/{k}": v for k, v in emb_t.items()}
        tensors |= {f"user_tower/{k}": v.cpu() for k, v in self.user_tower_.state_dict().items()}
        tensors |= {f"item_tower/{k}": v.cpu() for k, v in self.item_tower_.state_dict().items()}
        tensors["user_ids"] = torch.from_numpy(self.user_ids_.copy())
        tensors["user_fields"] = torch.from_numpy(self.user_fields_.copy())
        meta = {"embeddings": emb_meta, "user_columns": self.user_columns_,
                "item_columns": self.item_columns_, "losses": self.losses_}  # fmt: skip
        return tensors, meta

    def _load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        self.user_columns_ = list(meta["user_columns"])
        self.item_columns_ = list(meta["item_columns"])
        missing = [c for c in self.item_columns_ if c not in self.catalog_.table.column_names]
        if missing:
            raise IntegrityError(f"{self.name}: catalog_items lacks the item columns {missing}")
        self.losses_ = list(meta.get("losses", []))
        self.user_ids_ = require(tensors, "user_ids", self.name).astype(np.int64)
        self.user_fields_ = require(tensors, "user_fields", self.name).astype(np.int64)
        self._items = _ItemFeatures.from_catalog(self.catalog_, self.item_columns_)
        self._build(len(self.user_columns_), self._items.content.shape[1])
        self.embeddings_.load_state(
            {k[4:]: v for k, v in tensors.items() if k.startswith("emb/")}, meta["embeddings"]
        )
        for prefix, module in (
            ("user_tower/", self.user_tower_),
            ("item_tower/", self.item_tower_),
        ):
            sd = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            module.load_state_dict(sd)
        self._index_catalog()
