"""Publishing the online trainer's model into a `ModelStore`: deltas, compaction, retention,
and resuming from the last committed version.

A version is one atomic `ModelStore.publish` (temp folder, fsync of every file, manifest
written and the folder renamed last), holding together:
- what servers apply: the embedding rows touched since the parent version, the dense weights,
  the serving-state rows of the users and items seen, the trending retriever (a *delta*,
  kind `reelrec-bundle-delta`), or every file of a model directory (a *full* version, every
  `compact_every` deltas, so a chain never grows without bound);
- what the trainer resumes from (`trainer.*.safetensors`, see `OnlineTrainer`);
- the consumed offset and event counters (manifest `extra`).
State and offset cannot disagree: they are in one folder that appears in one rename. A
crash before the rename leaves only a temp folder (ignored, cleaned on the next start); a
version whose files do not verify is skipped by `latest_valid`, so it is neither served nor
resumed from.

Retention (`prune_chains`) keeps the newest `keep` versions, every version pinned by a live
server (servers pin the version they serve, and the one they are loading, see
`reelrec.serve.swap`) and every ancestor of those down to their full version, so a server
that starts or catches up can always load its chain.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import save as st_save

from reelrec.errors import IntegrityError
from reelrec.models.bundle import (
    DELTA_KIND,
    KIND,
    FeedBundle,
    bundle_files,
    dense_state,
    load_feed_model,
    state_rows,
)
from reelrec.online.trainer import CHECKPOINT_FILES, OnlineTrainer
from reelrec.store.atomic import fsync_dir
from reelrec.store.manifest import Manifest, read_file, read_manifest
from reelrec.store.versions import ModelStore

log = logging.getLogger(__name__)


@dataclass
class Lineage:
    """Where the next version attaches: its parent and the parent's embedding clock."""

    parent: int
    parent_clock: int
    deltas_since_full: int


def ensure_base(store: ModelStore, model_dir: Path) -> None:
    """An empty store gets the trained model directory as version 1 (offset 0)."""
    if store.latest_valid() is None:
        store.publish_dir(model_dir)


def clean_temp(store: ModelStore) -> None:
    """Remove temp folders left by a publisher killed mid-write (never a visible version)."""
    if not store.root.is_dir():
        return
    for entry in os.scandir(store.root):
        if entry.name.startswith(".v") and entry.name.endswith(".tmp") and entry.is_dir():
            shutil.rmtree(entry.path, ignore_errors=True)


def resume(
    store: ModelStore, device: Any, trainer_kwargs: dict[str, Any]
) -> tuple[OnlineTrainer, Lineage]:
    """A trainer continuing the newest valid version of the store, exactly where it ended."""
    found = store.latest_valid()
    if found is None:
        raise IntegrityError(f"model store {store.root}: no valid version to resume from")
    version, path = found
    bundle = load_feed_model(path, device)
    trainer = OnlineTrainer(bundle, device=device, **trainer_kwargs)
    manifest = bundle.manifest
    names = {e.name for e in manifest.files}
    counters = manifest.extra.get("online", {})
    if all(n in names for n in CHECKPOINT_FILES):
        trainer.restore({n: read_file(path, manifest, n) for n in CHECKPOINT_FILES}, counters)
    else:  # a model from `reelrec train`: nothing learned online yet
        trainer.set_counters(counters)
    lineage = Lineage(
        parent=version,
        parent_clock=int(counters.get("emb_clock", trainer.ranker.embeddings.version)),
        deltas_since_full=int(counters.get("deltas_since_full", 0)),
    )
    log.info("online: resumed from version %d at offset %d", version, trainer.offset)
    return trainer, lineage


def publish(store: ModelStore, trainer: OnlineTrainer, lineage: Lineage, *, full: bool) -> Manifest:
    """Write the trainer's model as the next version (a delta, or a full one) and its
    checkpoint + offset, atomically; advances `lineage`."""
    bundle: FeedBundle = trainer.bundle
    clock = trainer.ranker.embeddings.version
    users, items = trainer.take_touched()
    counters = {
        **trainer.counters(),
        "emb_clock": clock,
        "deltas_since_full": 0 if full else lineage.deltas_since_full + 1,
    }
    retriever_meta: dict[str, Any] = {}
    if full:
        files, config = bundle_files(
            builder=bundle.builder, ranker=trainer.ranker, tables=bundle.tables,
            state=bundle.state, retrievers=bundle.retrievers,
            info={**bundle.manifest.config.get("train", {}), "online": counters},
        )  # fmt: skip
        kind = KIND
    else:
        files = {
            "embeddings.delta.safetensors": trainer.ranker.embeddings.export_delta(
                lineage.parent_clock, with_optimizer=False
            ),
            "ranker.safetensors": st_save(dense_state(trainer.ranker)),
            "state.delta.safetensors": st_save(state_rows(bundle.state, users, items).tensors()),
        }
        if trainer.trending is not None:
            tensors, meta = trainer.trending.state()
            files[f"retriever.{trainer.trending.name}.safetensors"] = st_save(
                {k: v.contiguous() for k, v in tensors.items()}
            )
            retriever_meta[trainer.trending.name] = meta
        config = {"format": "reelrec-bundle-delta/1"}
        kind = DELTA_KIND
    files.update(trainer.checkpoint_files())
    manifest = store.publish(
        files,
        kind=kind,
        config=config,
        parent=lineage.parent,
        extra={"online": counters, "retriever_meta": retriever_meta},
    )
    lineage.parent = manifest.version
    lineage.parent_clock = clock
    lineage.deltas_since_full = int(counters["deltas_since_full"])
    bundle.version = manifest.version
    return manifest


def prune_chains(store: ModelStore, keep: int) -> list[int]:
    """Delete versions that are neither among the newest `keep`, nor pinned by a live
    process, nor an ancestor (down to the full version) of one of those. Returns deleted."""
    if keep < 1:
        raise ValueError(f"keep={keep}: retention must keep at least 1 version")
    with store._locked():  # noqa: SLF001 (the store's own publish/prune lock)
        versions = store.versions()
        needed: set[int] = set()
        for v in set(versions[-keep:]) | store.pinned():
            while v not in needed and v in versions:
                needed.add(v)
                try:
                    manifest = read_manifest(store.path(v), verify=False)
                except IntegrityError:
                    break
                if manifest.kind != DELTA_KIND or manifest.parent is None:
                    break
                v = manifest.parent
        deleted = [v for v in versions if v not in needed]
        for v in deleted:
            doomed = store.root / f".{store.path(v).name}.deleting.{uuid.uuid4().hex}"
            with contextlib.suppress(FileNotFoundError):
                os.replace(store.path(v), doomed)
                shutil.rmtree(doomed, ignore_errors=True)
        if deleted:
            fsync_dir(store.root)
    return deleted
