"""Hot model swap: watch a model directory or a model store, load new versions on the side,
and swap one reference.

A request reads `ModelHolder.current` once and uses that `Served` to the end, so in-flight
requests finish on the model they started with; the swap is a single attribute assignment
(atomic under the GIL). A new version is used only after its manifest and every file's
sha256 verify, the model loads, and one warm-up feed runs through the full pipeline; if any
step fails the version is refused (logged, counted, remembered so it is not retried) and the
old one keeps serving.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reelrec.errors import ConfigError
from reelrec.models.api import FeedModel
from reelrec.serve.metrics import ServerMetrics
from reelrec.serve.pipeline import FeedPipeline, PipelineConfig
from reelrec.serve.state import UserSnapshot
from reelrec.store.manifest import MANIFEST, read_manifest
from reelrec.store.versions import ModelStore, Pin, is_model_dir

log = logging.getLogger(__name__)
Loader = Callable[[Path, torch.device | None], FeedModel]
_EMPTY = np.empty(0, np.int64)


@dataclass(frozen=True)
class Served:
    """What one request uses: the model, its pipeline, and where it came from."""

    pipeline: FeedPipeline
    version: int
    path: Path
    loaded_at: float
    pin: Pin | None = None


@dataclass(frozen=True)
class SwapResult:
    """Outcome of one check: swapped in `version`, nothing new, or a refused version."""

    swapped: bool
    version: int | None
    refused: str | None = None


@dataclass(frozen=True)
class _Candidate:
    key: tuple[int, ...]  # identifies what was seen, so a refused one is not retried
    version: int | None
    path: Path


class ModelHolder:
    """Holds the served model and swaps in new ones (from `check_now` or a watcher thread)."""

    def __init__(
        self, source: Path, *, device: torch.device | None, pipeline_cfg: PipelineConfig,
        metrics: ServerMetrics, loader: Loader | None = None,
    ) -> None:  # fmt: skip
        source = Path(source)
        if not source.exists():
            raise ConfigError(f"--model {source}: no such directory (a model dir or store root)")
        if not source.is_dir():
            raise ConfigError(f"--model {source}: not a directory")
        self.source = source
        self.store = None if is_model_dir(source) else ModelStore(source)
        self.device = device
        self.pipeline_cfg = pipeline_cfg
        self.metrics = metrics
        self._loader = loader
        self.current: Served | None = None
        self._refused: set[tuple[int, ...]] = set()
        self._loaded_key: tuple[int, ...] | None = None
        self._check_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- candidates
    def _candidate(self) -> _Candidate | None:
        """The newest version not yet loaded or refused, or None."""
        if self.store is None:
            try:
                st = (self.source / MANIFEST).stat()
            except FileNotFoundError:  # mid-replace by write_model_dir: look again later
                return None
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            if key == self._loaded_key or key in self._refused:
                return None
            return _Candidate(key, None, self.source)
        current = self.current.version if self.current else 0
        for version in reversed(self.store.versions()):
            if version <= current:
                return None
            path = self.store.path(version)
            try:
                st = (path / MANIFEST).stat()
            except FileNotFoundError:  # deleted by retention meanwhile
                continue
            key = (version, st.st_ino, st.st_mtime_ns)
            if key not in self._refused:
                return _Candidate(key, version, path)
        return None

    def _load(self, cand: _Candidate) -> Served:
        manifest = read_manifest(cand.path, verify=True)
        if cand.version is not None and manifest.version != cand.version:
            raise ValueError(f"manifest version {manifest.version} in folder v{cand.version:08d}")
        model = self._from_deltas(cand, manifest.kind)
        if model is None:
            loader = self._loader
            if loader is None:
                from reelrec.models import load_feed_model

                loader = load_feed_model
            model = loader(cand.path, self.device)
        pipeline = FeedPipeline(model, self.pipeline_cfg)
        # Warm-up: one cold-start feed through every stage, so a model that loads but cannot
        # rank is refused here instead of failing live requests (and first-call costs are paid).
        cold = UserSnapshot(False, _EMPTY, _EMPTY, _EMPTY)
        pipeline.recommend(user_id=0, n=10, user=cold, now_ms=int(time.time() * 1000))
        return Served(
            pipeline=pipeline, version=pipeline.version, path=cand.path, loaded_at=time.time()
        )

    def _from_deltas(self, cand: _Candidate, kind: str) -> FeedModel | None:
        """A delta version (online trainer) whose chain reaches the served version: apply the
        deltas to a copy of the served model (seconds-level sync without a full load). None
        when a full load is needed (a full version, or the chain does not reach us)."""
        from reelrec.models.bundle import DELTA_KIND, FeedBundle, delta_chain

        current = self.current
        served = current.pipeline.model if current is not None else None
        if kind != DELTA_KIND or not isinstance(served, FeedBundle) or self.store is None:
            return None
        _, chain = delta_chain(cand.path)
        todo = [p for p in chain if int(p.name[1:]) > served.version]
        if not todo or read_manifest(todo[0], verify=False).parent != served.version:
            return None
        return served.with_deltas(todo)

    def check_now(self) -> SwapResult:
        """Look for a newer version; load, verify and swap it in. Never raises."""
        with self._check_lock:
            cand = self._candidate()
            if cand is None:
                return SwapResult(False, self.current.version if self.current else None)
            pin = self.store.pin(cand.version) if self.store and cand.version else None
            started = time.perf_counter()
            try:
                served = self._load(cand)
            except Exception as e:  # any failure of a new version must leave the old serving
                if pin is not None and self.store is not None:
                    self.store.unpin(pin)
                self._refused.add(cand.key)
                reason = type(e).__name__
                self.metrics.swap_failures.labels(reason).inc()
                log.error("model %s refused (%s: %s); still serving %s", cand.path, reason, e,
                          self.current.version if self.current else "nothing")  # fmt: skip
                return SwapResult(
                    False, self.current.version if self.current else None, f"{reason}: {e}"
                )
            served = dataclasses.replace(served, pin=pin)
            old, self.current = self.current, served  # the swap: one reference
            self._loaded_key = cand.key
            if old is not None and old.pin is not None and self.store is not None:
                self.store.unpin(old.pin)
            self.metrics.model_version.set(served.version)
            if old is not None:
                self.metrics.swaps.inc()
            log.info("serving model version %d from %s (loaded in %.2fs)", served.version,
                     served.path, time.perf_counter() - started)  # fmt: skip
            return SwapResult(True, served.version)

    # ------------------------------------------------------------------ watcher
    def start(self, poll_interval_s: float) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        current = self.current
        if current is not None and self.store is not None and current.pin is None:
            # Started again after stop(): pin the served version again.
            self.current = dataclasses.replace(current, pin=self.store.pin(current.version))

        def loop() -> None:
            # Loading a version is background work: on Linux a thread has its own nice
            # value, so the requests being served keep the CPU while a new model loads.
            with contextlib.suppress(OSError, AttributeError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 15)
            while not self._stop.wait(poll_interval_s):
                self.check_now()

        self._thread = threading.Thread(target=loop, name="reelrec-model-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        current = self.current
        if current is not None and current.pin is not None and self.store is not None:
            self.store.unpin(current.pin)
            self.current = dataclasses.replace(current, pin=None)
