"""A trained model directory: feature builder + ranker + retrievers + serving state.

Files (all listed with sha256 in manifest.json; no pickle anywhere):
    ranker.safetensors      dense ranker weights
    embeddings.safetensors  embedding rows, optimizer state and id index
    state.safetensors       serving snapshot: each user's recent history and the causal
                            counters of users and items at the end of training
    retriever.<name>.safetensors   one per retriever
    items.parquet, users.parquet   the catalog and the user profiles

A *delta* version (kind `reelrec-bundle-delta`, written by the online trainer into a model
store) names its parent in the manifest and holds only what changed since it:
    embeddings.delta.safetensors   rows touched and ids evicted since the parent
                                   (`EmbeddingCollection.export_delta`)
    ranker.safetensors             dense weights (only when they changed)
    state.delta.safetensors        serving-state rows of the users and items seen since
    retriever.<name>.safetensors   retrievers that learned online (e.g. trending)
A delta is loaded on top of its parent chain down to the nearest full version (`load_feed_model`
resolves the chain; `FeedBundle.with_deltas` applies new deltas to a loaded model).
"""

from __future__ import annotations

import copy
import dataclasses
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
from reelrec.features import CausalInputs, FeatureBuilder, FeatureConfig, FeatureFrame
from reelrec.features.history import ServingState, gap_since, session_position
from reelrec.models.api import ItemCatalog, RankOutput, Retriever, UserContext
from reelrec.models.ranker import Ranker, RankerConfig, ScoreFusion
from reelrec.store.manifest import Manifest, read_file, read_manifest, write_model_dir

KIND = "reelrec-bundle"
DELTA_KIND = "reelrec-bundle-delta"
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
    # the wide part: one bias per task for each id, straight into the logits
    "wide_user": "wide_user",
    "wide_item": "wide_item",
    "wide_author": "wide_author",
    "wide_fields": "wide_fields",
}


def ranker_tables(
    config: RankerConfig, lr: float, seed: int, wide_lr: float | None = None
) -> list[EmbeddingTableConfig]:
    """Deep tables are `embedding_dim` wide; wide tables hold one bias per head."""
    names = sorted(set(FEATURE_TABLES.values()))
    return [
        EmbeddingTableConfig(
            name=n,
            dim=config.n_heads if n.startswith("wide_") else config.embedding_dim,
            optimizer="rowwise_adagrad",
            lr=(wide_lr or lr) if n.startswith("wide_") else lr,
            seed=seed + i,
            init_std=0.0 if n.startswith("wide_") else 0.01,
        )
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
    files, config = bundle_files(
        builder=builder, ranker=ranker, tables=tables, state=state, retrievers=retrievers,
        info=info,
    )  # fmt: skip
    return write_model_dir(path, files, kind=KIND, config=config, version=version)


def dense_state(ranker: Ranker) -> dict[str, torch.Tensor]:
    """The ranker's dense weights (everything but the embedding tables), on the cpu."""
    return {
        k: v.detach().cpu().contiguous()
        for k, v in ranker.state_dict().items()
        if not k.startswith("embeddings.")
    }


def bundle_files(
    *,
    builder: FeatureBuilder,
    ranker: Ranker,
    tables: list[EmbeddingTableConfig],
    state: ServingState,
    retrievers: list[Any],
    info: dict[str, Any],
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """(file name -> bytes, manifest config) of a complete model directory."""
    emb_tensors, emb_meta = ranker.embeddings.state()
    files = {
        "ranker.safetensors": st_save(dense_state(ranker)),
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
    return files, _jsonable(config)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.value if hasattr(o, "value") else str(o)))


class FeedBundle:
    """A loaded model directory; satisfies `reelrec.models.api.FeedModel`.

    `path` is a full model directory; `load_feed_model` also accepts a delta version in a
    model store and loads its chain.
    """

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
        self.items = items
        self.builder = FeatureBuilder.from_config(FeatureConfig(**cfg["features"]), items, users)
        self.catalog: ItemCatalog = self.builder.catalog_
        self.tables = [EmbeddingTableConfig.from_dict(t) for t in cfg["tables"]]
        missing = sorted(set(FEATURE_TABLES.values()) - {t.name for t in self.tables})
        if missing:
            raise IntegrityError(
                f"{self.path}: written by an older reelrec (no embedding tables {missing}); "
                "train it again with `reelrec train`"
            )
        self.ranker = make_ranker(RankerConfig(**cfg["ranker"]), self.tables, self.device)
        self.ranker.embeddings.load_state(
            st_load(self._read("embeddings.safetensors")), cfg["embedding_meta"]
        )
        self.ranker.load_state_dict(st_load(self._read("ranker.safetensors")), strict=False)
        self.ranker.eval()
        state = st_load(self._read("state.safetensors"))
        missing = sorted(set(ServingState.__dataclass_fields__) - set(state))
        if missing:
            raise IntegrityError(
                f"{self.path}: written by an older reelrec (no state arrays {missing}); "
                "train it again with `reelrec train`"
            )
        self.state = ServingState.from_tensors(state)
        self.fusion = ScoreFusion(**cfg["fusion"])
        self.retrievers: list[Retriever] = [
            self._load_retriever(r, items) for r in cfg["retrievers"]
        ]
        self._retriever_meta = {r["name"]: r for r in cfg["retrievers"]}

    # ------------------------------------------------------------------ deltas
    def apply_delta(self, path: Path) -> None:
        """Apply one delta version (its parent must be this model's version), in place.

        Not for a model that is serving requests: see `with_deltas`.
        """
        path = Path(path)
        manifest = read_manifest(path)
        if manifest.kind != DELTA_KIND:
            raise IntegrityError(f"{path}: holds a {manifest.kind!r}, not a {DELTA_KIND!r}")
        if manifest.parent != self.version:
            raise IntegrityError(
                f"{path}: delta version {manifest.version} has parent {manifest.parent}, "
                f"this model is version {self.version}"
            )
        names = {e.name for e in manifest.files}

        def read(name: str) -> bytes:
            return read_file(path, manifest, name)

        self.ranker.embeddings.apply_delta(read("embeddings.delta.safetensors"))
        if "ranker.safetensors" in names:
            self.ranker.load_state_dict(st_load(read("ranker.safetensors")), strict=False)
        if "state.delta.safetensors" in names:
            part = ServingState.from_tensors(st_load(read("state.delta.safetensors")))
            self.state = merge_state(self.state, part)
        for i, r in enumerate(self.retrievers):
            name = f"retriever.{r.name}.safetensors"
            if name in names and r.name in self._retriever_meta:
                entry = dict(self._retriever_meta[r.name])
                entry["meta"] = manifest.extra.get("retriever_meta", {}).get(r.name, entry["meta"])
                self.retrievers[i] = self._load_retriever(entry, self.items, read(name))
        self.version = manifest.version
        self.path = path
        self.manifest = manifest

    def copy(self) -> FeedBundle:
        """An independent copy of the parts deltas change (ranker, state, retrievers); the
        builder, catalog and item table are shared (deltas never change them)."""
        twin = copy.copy(self)
        twin.ranker = make_ranker(self.ranker.config, self.tables, self.device)
        tensors, meta = self.ranker.embeddings.state()
        twin.ranker.embeddings.load_state(tensors, meta)
        twin.ranker.load_state_dict(dense_state(self.ranker), strict=False)
        twin.ranker.eval()
        twin.retrievers = list(self.retrievers)
        return twin

    def with_deltas(self, paths: list[Path]) -> FeedBundle:
        """A new model: a copy of this one with the deltas applied in order (this one keeps
        serving untouched, so a hot swap never changes a model under a running request)."""
        twin = self.copy()
        for p in paths:
            twin.apply_delta(p)
        return twin

    def transform(self, events: pa.Table) -> tuple[FeatureFrame, ServingState]:
        """Features of later events, continuing from this model's state, with the users'
        counters held at their values as of the model's training cut-off (as `evaluate`
        and `rank` see them)."""
        return self.builder.transform(events, self.state, after_cutoff=True)

    def _read(self, name: str) -> bytes:
        return read_file(self.path, self.manifest, name)

    def _load_retriever(
        self, entry: dict[str, Any], items: pa.Table, data: bytes | None = None
    ) -> Retriever:
        from reelrec.models import retrieval

        cls = getattr(retrieval, entry["class"], None)
        if cls is None or entry["class"] not in retrieval.__all__:
            raise IntegrityError(f"{self.path}: unknown retriever class {entry['class']!r}")
        if data is None:
            data = self._read(f"retriever.{entry['name']}.safetensors")
        tensors = st_load(data)
        return cls.from_state(tensors, entry["meta"], items)  # type: ignore[no-any-return]

    def candidate_frame(self, user: UserContext, item_ids: np.ndarray) -> FeatureFrame:
        """Features of K candidates for one user, as the server ranks them (one row each)."""
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
        recent = np.asarray(user.history, np.int64)
        # A live event may name an item outside the catalog: it has no author row, so its
        # item and author sequences would disagree in length; it carries nothing to attend.
        recent = recent[self.catalog.positions(recent) >= 0][-cfg.history_len :]
        hist[: recent.size] = recent
        gap = gap_since(user.now_ms, user.last_event_ms)
        causal = CausalInputs(
            user_n, user_pos, item_n, item_pos, np.full(k, gap, np.int64),
            np.full(k, session_position(gap, user.session_events), np.int64),
        )  # fmt: skip
        return self.builder.assemble(
            np.full(k, user.user_id, np.int64), item_ids, self.catalog.positions(item_ids),
            np.full(k, user.now_ms, np.int64), np.full(k, user.tab, np.int64), np.zeros(k, np.int64),
            np.broadcast_to(hist, (k, cfg.history_len)), causal, True,
        )  # fmt: skip

    @torch.inference_mode()
    def rank(self, user: UserContext, item_ids: np.ndarray) -> RankOutput:
        """Score K candidates of one user. The history is the same for all K, so the batch
        carries it once (`shares_history`): the ranker embeds it once and attends densely."""
        item_ids = np.asarray(item_ids, dtype=np.int64)
        frame = self.candidate_frame(user, item_ids)
        frame = dataclasses.replace(
            frame, hist_item=frame.hist_item[:1], hist_author=frame.hist_author[:1]
        )
        cfg = self.builder.config_
        out = self.ranker(frame.batch(slice(None)).to(self.device))
        probs = out.probabilities()
        per_task = {t: probs[:, i] for i, t in enumerate(cfg.tasks)}
        score = self.fusion(per_task, out.watch)
        tasks = {t: v.float().cpu().numpy() for t, v in per_task.items()}
        if out.watch is not None:
            tasks["watch_ratio"] = out.watch.float().cpu().numpy()
        return RankOutput(score=score.float().cpu().numpy(), tasks=tasks)

    def user_session(self, user_id: int) -> tuple[int, int]:
        """The user's last event time (-1: none) and that session's events, at the end of
        training (the server's starting state)."""
        return self.state.user_session(user_id)

    def user_history(self, user_id: int) -> np.ndarray:
        """The user's history at the end of training (the server's starting state)."""
        row = self.state.user_row(user_id)
        if row < 0:
            return np.empty(0, np.int64)
        h = self.state.hist[row]
        return h[h >= 0]


def merge_state(base: ServingState, update: ServingState) -> ServingState:
    """`base` with the rows of `update` added or replaced (users and items by raw id)."""
    users = np.union1d(base.user_ids, update.user_ids).astype(np.int64)
    items = np.union1d(base.item_ids, update.item_ids).astype(np.int64)
    ub, uu = np.searchsorted(users, base.user_ids), np.searchsorted(users, update.user_ids)
    ib, iu = np.searchsorted(items, base.item_ids), np.searchsorted(items, update.item_ids)

    def put(
        name: str, fill: int, n: int, rows_base: np.ndarray, rows_update: np.ndarray
    ) -> np.ndarray:
        a, b = getattr(base, name), getattr(update, name)
        out = np.full((n, *a.shape[1:]), fill, a.dtype)
        out[rows_base] = a
        out[rows_update] = b
        return out

    def by_user(name: str, fill: int = 0) -> np.ndarray:
        return put(name, fill, users.size, ub, uu)

    def by_item(name: str) -> np.ndarray:
        return put(name, 0, items.size, ib, iu)

    return ServingState(
        user_ids=users, hist=by_user("hist", -1), user_n=by_user("user_n"),
        user_pos=by_user("user_pos"), item_ids=items, item_n=by_item("item_n"),
        item_pos=by_item("item_pos"), last_ms=by_user("last_ms", -1),
        session_n=by_user("session_n"),
    )  # fmt: skip


def state_rows(state: ServingState, user_ids: np.ndarray, item_ids: np.ndarray) -> ServingState:
    """The rows of these users and items (ids absent from `state` are skipped)."""

    def pick(universe: np.ndarray, ids: np.ndarray) -> np.ndarray:
        ids = np.unique(ids)
        idx = np.clip(np.searchsorted(universe, ids), 0, max(universe.size - 1, 0))
        return idx[universe[idx] == ids] if universe.size else idx[:0]

    u, v = pick(state.user_ids, user_ids), pick(state.item_ids, item_ids)
    return ServingState(
        state.user_ids[u], state.hist[u], state.user_n[u], state.user_pos[u],
        state.item_ids[v], state.item_n[v], state.item_pos[v], state.last_ms[u],
        state.session_n[u],
    )  # fmt: skip


def delta_chain(path: Path) -> tuple[Path, list[Path]]:
    """(the full version, [the deltas from it up to `path`, oldest first]) for a version
    folder in a model store; a full model directory is its own chain."""
    from reelrec.store.versions import version_dir_name

    path = Path(path)
    deltas: list[Path] = []
    manifest = read_manifest(path, verify=False)
    while manifest.kind == DELTA_KIND:
        deltas.append(path)
        if manifest.parent is None:
            raise IntegrityError(f"{path}: delta version without a parent")
        path = path.parent / version_dir_name(manifest.parent)
        if not path.is_dir():
            raise IntegrityError(f"{deltas[-1]}: parent version folder {path} is missing")
        manifest = read_manifest(path, verify=False)
    return path, deltas[::-1]


def load_feed_model(path: Path, device: torch.device | None = None) -> FeedBundle:
    """Load and verify a model directory written by `reelrec train`, or a version folder of a
    model store (a delta version loads its chain down to the nearest full version)."""
    base, deltas = delta_chain(Path(path))
    bundle = FeedBundle(base, device)
    for d in deltas:
        bundle.apply_delta(d)
    return bundle
