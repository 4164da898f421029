"""A trained model directory: feature builder + ranker + retrievers + serving state.

Files (all listed with sha256 in manifest.json; no pickle anywhere):
    ranker.safetensors      dense ranker weights
    embeddings.safetensors  embedding rows, optimizer state and id index
    state.safetensors       serving snapshot: each user's recent history and the causal
                            counters of users and items at the end of training
    retriever.<name>.safetensors   one per retriever
    items.parquet, users.parquet   the catalog and the user profiles
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from reelrec.embedding import EmbeddingCollection, EmbeddingTableConfig
from reelrec.errors import IntegrityError
from reelrec.features import FeatureBuilder, FeatureConfig
from reelrec.features.history import ServingState
from reelrec.models.api import ItemCatalog, RankOutput, Retriever, UserContext
from reelrec.models.ranker import Ranker, RankerConfig, ScoreFusion
from reelrec.store.manifest import Manifest, read_file, read_manifest, write_model_dir

KIND = "reelrec-bundle"
# feature -> table: histories share the item and author tables with the candidate.
FEATURE_TABLES = {
    "user_id": "user",
    "item_id": "item",
    "hist_item": "item",
    "author_id": "author",
    "hist_author": "author",
    "music_id": "music",
    "tags": "tag",
    "fields": "fields",
}


def ranker_tables(dim: int, lr: float, seed: int) -> list[EmbeddingTableConfig]:
    names = sorted(set(FEATURE_TABLES.values()))
    return [
        EmbeddingTableConfig(name=n, dim=dim, optimizer="rowwise_adagrad", lr=lr, seed=seed + i)
        for i, n in enumerate(names)
    ]


def make_ranker(
    config: RankerConfig, tables: list[EmbeddingTableConfig], device: torch.device | None = None
) -> Ranker:
    embeddings = EmbeddingCollection(tables, FEATURE_TABLES, device=device)
    return Ranker(config, embeddings).to(device or torch.device("cpu"))


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def save_bundle(
    path: Path,
    *,
    builder: FeatureBuilder,
    ranker: Ranker,
    tables: list[EmbeddingTableConfig],
    state: ServingState,
    retrievers: list[Any],
    info: dict[str, Any],
    version: int = 1,
) -> Manifest:
    """Write a complete model directory atomically."""
    emb_tensors, emb_meta = ranker.embeddings.state()
    dense = {
        k: v.detach().cpu().contiguous()
        for k, v in ranker.state_dict().items()
        if not k.startswith("embeddings.")
    }
    files = {
        "ranker.safetensors": st_save(dense),
        "embeddings.safetensors": st_save(
            {k: v.detach().cpu().contiguous() for k, v in emb_tensors.items()}
        ),
        "state.safetensors": st_save(state.tensors()),
        "items.parquet": _parquet_bytes(builder.catalog_.table),
        "users.parquet": _parquet_bytes(builder.users_.table),
    }
    retriever_meta = []
    for r in retrievers:
        tensors, meta = r.state()
        files[f"retriever.{r.name}.safetensors"] = st_save(
            {k: v.contiguous() for k, v in tensors.items()}
        )
        retriever_meta.append({"name": r.name, "class": type(r).__name__, "meta": meta})
    config = {
        "features": builder.config_dict(),
        "ranker": asdict(ranker.config),
        "tables": [t.to_dict() for t in tables],
        "embedding_meta": emb_meta,
        "retrievers": retriever_meta,
        "fusion": asdict(ScoreFusion()),
        "train": info,
    }
    return write_model_dir(path, files, kind=KIND, config=_jsonable(config), version=version)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.value if hasattr(o, "value") else str(o)))


class FeedBundle:
    """A loaded model directory; satisfies `reelrec.models.api.FeedModel`."""

    def __init__(self, path: Path, device: torch.device | None = None) -> None:
        self.path = Path(path)
        self.device = device or torch.device("cpu")
        self.manifest = read_manifest(self.path)
        if self.manifest.kind != KIND:
            raise IntegrityError(f"{self.path}: holds a {self.manifest.kind!r}, not a {KIND!r}")
        cfg = self.manifest.config
        self.version = self.manifest.version
        items = pq.read_table(io.BytesIO(self._read("items.parquet")))
        users = pq.read_table(io.BytesIO(self._read("users.parquet")))
        self.builder = FeatureBuilder.from_config(FeatureConfig(**cfg["features"]), items, users)
        self.catalog: ItemCatalog = self.builder.catalog_
        self.tables = [EmbeddingTableConfig.from_dict(t) for t in cfg["tables"]]
        self.ranker = make_ranker(RankerConfig(**cfg["ranker"]), self.tables, self.device)
        self.ranker.embeddings.load_state(
            st_load(self._read("embeddings.safetensors")), cfg["embedding_meta"]
        )
        self.ranker.load_state_dict(st_load(self._read("ranker.safetensors")), strict=False)
        self.ranker.eval()
        self.state = ServingState.from_tensors(st_load(self._read("state.safetensors")))
        self.fusion = ScoreFusion(**cfg["fusion"])
        self.retrievers: list[Retriever] = [
            self._load_retriever(r, items) for r in cfg["retrievers"]
        ]

    def _read(self, name: str) -> bytes:
        return read_file(self.path, self.manifest, name)

    def _load_retriever(self, entry: dict[str, Any], items: pa.Table) -> Retriever:
        from reelrec.models import retrieval

        cls = getattr(retrieval, entry["class"], None)
        if cls is None or entry["class"] not in retrieval.__all__:
            raise IntegrityError(f"{self.path}: unknown retriever class {entry['class']!r}")
        tensors = st_load(self._read(f"retriever.{entry['name']}.safetensors"))
        return cls.from_state(tensors, entry["meta"], items)  # type: ignore[no-any-return]

    @torch.no_grad()
    def rank(self, user: UserContext, item_ids: np.ndarray) -> RankOutput:
        item_ids = np.asarray(item_ids, dtype=np.int64)
        k = item_ids.size
        cfg = self.builder.config_
        n_tasks = len(cfg.tasks)
        row = self.state.user_row(user.user_id)
        user_n = np.full(k, self.state.user_n[row] if row >= 0 else 0, np.int64)
        user_pos = np.broadcast_to(
            self.state.user_pos[row] if row >= 0 else np.zeros(n_tasks, np.int64), (k, n_tasks)
        )
        item_n, item_pos = self.state.item_counts(item_ids)
        hist = np.full(cfg.history_len, -1, np.int64)
        recent = np.asarray(user.history, np.int64)[-cfg.history_len :]
        hist[: recent.size] = recent
        frame = self.builder.assemble(
            np.full(k, user.user_id, np.int64), item_ids, self.catalog.positions(item_ids),
            np.full(k, user.now_ms, np.int64), np.full(k, user.tab, np.int64), np.zeros(k, np.int64),
            np.broadcast_to(hist, (k, cfg.history_len)), user_n, user_pos, item_n, item_pos, True,
        )  # fmt: skip
        out = self.ranker(frame.batch(slice(None)).to(self.device))
        probs = out.probabilities()
        per_task = {t: probs[:, i] for i, t in enumerate(cfg.tasks)}
        score = self.fusion(per_task, out.watch)
        tasks = {t: v.float().cpu().numpy() for t, v in per_task.items()}
        if out.watch is not None:
            tasks["watch_ratio"] = out.watch.float().cpu().numpy()
        return RankOutput(score=score.float().cpu().numpy(), tasks=tasks)

    def user_history(self, user_id: int) -> np.ndarray:
        """The user's history at the end of training (the server's starting state)."""
        row = self.state.user_row(user_id)
        if row < 0:
            return np.empty(0, np.int64)
        h = self.state.hist[row]
        return h[h >= 0]


def load_feed_model(path: Path, device: torch.device | None = None) -> FeedBundle:
    """Load and verify a model directory written by `reelrec train`."""
    return FeedBundle(path, device)
