"""`EmbeddingCollection`: several dynamic tables behind named jagged features.

Shapes: B = batch size, N_f = ids of feature f over the batch, D = the feature's table dim,
L = max_len of a sequence.

Training contract (read this before wiring a model):
- Raw ids arrive on the host (cpu int64 `Jagged` values); only row numbers and pooled
  rows live on the device.
- In train mode, lookups admit and insert ids as configured; outputs are differentiable and
  `loss.backward()` applies the tables' fused row-wise optimizer to the touched rows during
  the backward itself (a custom autograd Function). There is no table parameter for a
  torch optimizer: `collection.parameters()` is empty. Each backward through one forward
  applies one update; duplicates of an id within a forward are summed first.
- In eval mode unseen ids map to the zero default row and nothing is inserted or counted;
  outputs carry no gradient.
- `collection.requires_update = False` (or `with collection.frozen():`) keeps train-mode
  lookups but applies no update, for evaluating a frozen model.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as st_save
from torch import Tensor, nn

from reelrec.batch import Jagged, KeyedJagged
from reelrec.embedding.config import EmbeddingTableConfig
from reelrec.embedding.table import (
    DELTA_FORMAT,
    DynamicEmbedding,
    Segment,
    VersionClock,
    _load_blob,
)
from reelrec.errors import ConfigError, DataError, IntegrityError
from reelrec.store import read_file, read_manifest, write_model_dir

COLLECTION_DELTA_FORMAT = "reelrec-embedding-collection-delta/1"
COLLECTION_STATE_FORMAT = "reelrec-embedding-collection/1"
POOLINGS = ("sum", "mean")


def _host(jagged: Jagged, feature: str) -> tuple[np.ndarray, np.ndarray]:
    values = jagged.values.detach().to("cpu").reshape(-1)
    lengths = jagged.lengths.detach().to("cpu", torch.int64).reshape(-1).numpy()
    if values.dtype not in (torch.int64, torch.int32):
        raise DataError("batch", f"ids must be int64, got {values.dtype}", column=feature)
    vals = np.ascontiguousarray(values.numpy(), dtype=np.int64)
    if lengths.size and lengths.min() < 0:
        raise DataError("batch", "negative length", column=feature)
    if int(lengths.sum()) != vals.shape[0]:
        raise DataError(
            "batch",
            f"lengths sum to {int(lengths.sum())} but there are {vals.shape[0]} ids",
            column=feature,
        )
    return vals, lengths


def _pooled_segment(start: int, lengths: np.ndarray, mean: bool) -> Segment:
    b = lengths.shape[0]
    n = int(lengths.sum())
    lo = int(lengths.min()) if b else 0
    fixed = b > 0 and lo > 0 and lo == int(lengths.max())
    scale = None
    if mean:
        scale = (1.0 / np.maximum(lengths, 1)).astype(np.float32)
    if fixed:
        return Segment(start, start + n, b, bag=lo, scale=scale)
    out_idx = np.repeat(np.arange(b, dtype=np.int64), lengths)
    return Segment(start, start + n, b, out_idx=out_idx, scale=scale)


class EmbeddingCollection(nn.Module):
    """Dynamic tables, and the features that read them (several may share a table).

    Args:
        tables: one `EmbeddingTableConfig` per table (names unique).
        feature_to_table: feature name -> table name.
        device: where rows live (default cpu). Fixed at construction: `.to()` does not move
            the tables.

    Example::

        ec = EmbeddingCollection(
            [EmbeddingTableConfig(name="video", dim=8)],
            {"video_id": "video", "history": "video"},
        )
        kj = KeyedJagged({"video_id": Jagged(torch.tensor([5, 9]), torch.tensor([1, 1]))})
        out = ec(kj)                       # {"video_id": (2, 8)}
        out["video_id"].sum().backward()   # rows 5 and 9 updated in place
    """

    def __init__(
        self,
        tables: list[EmbeddingTableConfig],
        feature_to_table: dict[str, str],
        device: torch.device | None = None,
    ) -> None:
        super().__init__()
        names = [t.name for t in tables]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"EmbeddingCollection: duplicate table names {dupes}")
        if not tables:
            raise ConfigError("EmbeddingCollection: tables is empty")
        for feature, table in feature_to_table.items():
            if table not in names:
                raise ConfigError(
                    f"EmbeddingCollection: feature {feature!r} maps to unknown table "
                    f"{table!r} (tables: {names})"
                )
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.clock = VersionClock()
        self.configs = list(tables)
        self.tables: dict[str, DynamicEmbedding] = {
            t.name: DynamicEmbedding(t, self.device, self.clock) for t in tables
        }
        self.feature_to_table = dict(feature_to_table)
        # A 0-d leaf that requires grad so autograd records the fused lookups (no gradient
        # ever reaches it). Deliberately not a Parameter.
        self._anchor = torch.zeros((), requires_grad=True)
        self._requires_update = True

    # ------------------------------------------------------------------------------------
    # modes
    # ------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> EmbeddingCollection:
        super().train(mode)
        for t in self.tables.values():
            t.train(mode)
        return self

    @property
    def requires_update(self) -> bool:
        return self._requires_update

    @requires_update.setter
    def requires_update(self, value: bool) -> None:
        self._requires_update = bool(value)
        for t in self.tables.values():
            t.requires_update = bool(value)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[EmbeddingCollection]:
        """Apply no optimizer update inside the block (lookups still admit in train mode)."""
        before = self.requires_update
        self.requires_update = False
        try:
            yield self
        finally:
            self.requires_update = before

    def set_time(self, now_ms: int) -> None:
        for t in self.tables.values():
            t.set_time(now_ms)

    def expire(self) -> dict[str, int]:
        """Evict ids idle for longer than their table's ttl_ms; returns counts per table."""
        return {name: t.expire() for name, t in self.tables.items()}

    @property
    def version(self) -> int:
        return self.clock.value

    def table_of(self, feature: str) -> DynamicEmbedding:
        try:
            return self.tables[self.feature_to_table[feature]]
        except KeyError:
            raise ConfigError(
                f"EmbeddingCollection: unknown feature {feature!r} "
                f"(known: {sorted(self.feature_to_table)})"
            ) from None

    # ------------------------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------------------------
    def forward(self, kj: KeyedJagged, pooling: str = "sum") -> dict[str, Tensor]:
        """Pooled rows per feature present in `kj`: {feature: (B, D)}.

        Ids of all features on one table are resolved together (one hash lookup, one
        gather, one dedup per table). An empty bag pools to zeros.
        """
        if pooling not in POOLINGS:
            raise ConfigError(
                f"EmbeddingCollection: pooling={pooling!r}, expected one of {POOLINGS}"
            )
        groups: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
        for feature in kj.keys():  # noqa: SIM118 (KeyedJagged has no __iter__)
            name = self.table_of(feature).config.name
            vals, lengths = _host(kj[feature], feature)
            groups.setdefault(name, []).append((feature, vals, lengths))
        out: dict[str, Tensor] = {}
        for table_name, feats in groups.items():
            table = self.tables[table_name]
            segments, start = [], 0
            for _, vals, lengths in feats:
                segments.append(_pooled_segment(start, lengths, pooling == "mean"))
                start += vals.shape[0]
            ids = feats[0][1] if len(feats) == 1 else np.concatenate([f[1] for f in feats])
            plan = table.plan(ids, segments)
            for (feature, _, _), emb in zip(feats, table.outputs(plan, self._anchor), strict=True):
                out[feature] = emb
        return out

    def sequence(self, feature: str, jagged: Jagged, max_len: int) -> tuple[Tensor, Tensor]:
        """Unpooled rows of the last `max_len` ids of each row, RIGHT-padded.

        Returns emb (B, L, D) with row b's kept ids at positions 0..k_b-1 in their input
        order (oldest first, most recent at k_b-1) and zeros after, and mask (B, L) bool,
        True on real positions. Differentiable like forward().
        """
        if max_len < 1:
            raise ConfigError(f"EmbeddingCollection.sequence: max_len={max_len}, expected >= 1")
        table = self.table_of(feature)
        vals, lengths = _host(jagged, feature)
        b = lengths.shape[0]
        keep = np.minimum(lengths, max_len)
        row = np.repeat(np.arange(b, dtype=np.int64), lengths)  # (N,) row of each id
        starts = np.cumsum(lengths) - lengths
        local = np.arange(vals.shape[0], dtype=np.int64) - starts[row]
        first_kept = (lengths - keep)[row]
        kept = local >= first_kept
        out_idx = row[kept] * max_len + (local[kept] - first_kept[kept])  # (K,) in B*L
        ids = vals[kept]
        plan = table.plan(ids, [Segment(0, ids.shape[0], b * max_len, out_idx=out_idx)])
        emb = table.outputs(plan, self._anchor)[0].view(b, max_len, table.config.dim)
        mask = torch.arange(max_len).unsqueeze(0) < torch.from_numpy(keep).unsqueeze(1)
        return emb, mask.to(self.device)

    # ------------------------------------------------------------------------------------
    # deltas, state, checkpoints
    # ------------------------------------------------------------------------------------
    def export_delta(self, since_version: int, with_optimizer: bool = True) -> bytes:
        """All tables' rows touched and ids evicted after `since_version` (one clock), as
        safetensors bytes: tensors `<table>/ids`, `<table>/weight`, `<table>/evicted`, ..."""
        tensors: dict[str, Tensor] = {}
        metas: dict[str, Any] = {}
        for name, table in self.tables.items():
            t, m = table.delta_tensors(since_version, with_optimizer)
            tensors.update({f"{name}/{k}": v for k, v in t.items()})
            metas[name] = m
        meta = {
            "format": COLLECTION_DELTA_FORMAT,
            "since": int(since_version),
            "version": self.version,
            "tables": metas,
        }
        return st_save(tensors, metadata={"meta": json.dumps(meta)})

    def apply_delta(self, data: bytes) -> int:
        """Apply another collection's export_delta; returns the number of rows written."""
        tensors, meta = _load_blob(data, "embedding collection delta", COLLECTION_DELTA_FORMAT)
        written = 0
        for name, tmeta in meta["tables"].items():
            if name not in self.tables:
                raise ConfigError(f"EmbeddingCollection: delta has unknown table {name!r}")
            if tmeta.get("format") != DELTA_FORMAT:
                raise IntegrityError(
                    f"delta for table {name!r}: bad format {tmeta.get('format')!r}"
                )
            prefix = f"{name}/"
            sub = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            written += self.tables[name].apply_delta_tensors(sub, tmeta)
        return written

    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """(tensors `<table>/...`, metadata) that load_state resumes from bit-identically."""
        tensors: dict[str, Tensor] = {}
        metas: dict[str, Any] = {}
        for name, table in self.tables.items():
            t, m = table.state()
            tensors.update({f"{name}/{k}": v for k, v in t.items()})
            metas[name] = m
        meta = {
            "format": COLLECTION_STATE_FORMAT,
            "clock": self.clock.value,
            "feature_to_table": self.feature_to_table,
            "tables": metas,
        }
        return tensors, meta

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        if meta.get("format") != COLLECTION_STATE_FORMAT:
            raise IntegrityError(
                f"embedding collection state: format {meta.get('format')!r}, "
                f"expected {COLLECTION_STATE_FORMAT}"
            )
        missing = sorted(set(self.tables) - set(meta["tables"]))
        if missing:
            raise ConfigError(f"EmbeddingCollection: state has no tables {missing}")
        for name, table in self.tables.items():
            prefix = f"{name}/"
            sub = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            table.load_state(sub, meta["tables"][name])
        self.clock.value = int(meta["clock"])

    def checkpoint(self, path: str | Path) -> Path:
        """Model directory: one `<table>.safetensors` per table + manifest (sha256 each)."""
        files = {f"{name}.safetensors": t.state_bytes() for name, t in self.tables.items()}
        write_model_dir(
            Path(path),
            files,
            kind="embedding_collection",
            config={
                "tables": [c.to_dict() for c in self.configs],
                "feature_to_table": self.feature_to_table,
            },
            version=max(self.version, 1),
            extra={"clock": self.clock.value},
        )
        return Path(path)

    def restore(self, path: str | Path) -> None:
        """Load checkpoint(); IntegrityError when a file is missing, truncated or corrupted."""
        path = Path(path)
        manifest = read_manifest(path)
        blobs = {}
        for name in self.tables:
            fname = f"{name}.safetensors"
            try:
                manifest.file(fname)
            except KeyError:
                raise IntegrityError(f"{path}: no {fname} in the manifest") from None
            blobs[name] = read_file(path, manifest, fname)
        for name, data in blobs.items():
            self.tables[name].load_state_bytes(data)
        self.clock.value = int(manifest.extra.get("clock", self.clock.value))

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: torch.device | None = None
    ) -> EmbeddingCollection:
        """Build the collection described by a checkpoint() directory and restore it."""
        manifest = read_manifest(Path(path))
        cfg = manifest.config
        tables = [EmbeddingTableConfig.from_dict(d) for d in cfg["tables"]]
        ec = cls(tables, dict(cfg["feature_to_table"]), device)
        ec.restore(path)
        return ec

    def memory_report(self) -> dict[str, Any]:
        tables = {name: t.memory_report() for name, t in self.tables.items()}
        return {"tables": tables, "total_bytes": sum(r["total_bytes"] for r in tables.values())}
