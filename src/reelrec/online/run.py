"""`reelrec online`: consume the event log, predict-then-learn, publish a version every few
seconds; resume from the store after any stop or crash."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from reelrec.device import resolve_device
from reelrec.errors import ConfigError
from reelrec.online.log import EventSource, LogBatch, RedisStreamLog, open_source
from reelrec.online.metrics import TrainerMetrics
from reelrec.online.publish import Lineage, clean_temp, ensure_base, prune_chains, publish, resume
from reelrec.online.trainer import OnlineLearning, OnlineTrainer
from reelrec.store.versions import ModelStore

log = logging.getLogger(__name__)


def parse_seconds(value: str | float, option: str = "--publish-every") -> float:
    """'2s', '500ms', '1m' or a number of seconds."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower()
        scale = 1.0
        for suffix, mult in (("ms", 1e-3), ("s", 1.0), ("m", 60.0)):
            if text.endswith(suffix):
                text, scale = text[: -len(suffix)], mult
                break
        try:
            seconds = float(text) * scale
        except ValueError:
            raise ConfigError(
                f"{option} {value!r}: expected a duration like 2s, 500ms, 1m"
            ) from None
    if seconds <= 0:
        raise ConfigError(f"{option} {value!r}: must be > 0")
    return seconds


@dataclass
class OnlineConfig:
    """`reelrec online` options, 1:1.

    `partial_after_s`: when the log holds fewer than `batch_size` new events, learn them
    anyway once the oldest has waited this long (freshness); None learns full batches only,
    which makes batch boundaries a function of the log alone (a crash-restarted run then
    equals an uninterrupted one bit for bit).
    """

    model: Path
    events: str
    store: Path
    publish_every_s: float = 2.0
    batch_size: int = 512
    learning: OnlineLearning = field(default_factory=OnlineLearning)
    compact_every: int = 20
    keep: int = 30
    partial_after_s: float | None = 0.05
    device: str = "auto"
    threads: int | None = None
    metrics_port: int | None = None
    until_offset: int | None = None  # stop (after publishing) once this offset is learned
    idle_exit_s: float | None = None  # stop after this long without new events
    poll_s: float = 0.02
    consumer: str = "trainer-0"
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("publish_every_s", "batch_size", "compact_every", "keep", "poll_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)}: must be > 0")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads={self.threads}: must be >= 1")


@dataclass
class OnlineSummary:
    learned: int
    offset: int
    versions: list[int]
    events_per_s: float
    rolling: dict[str, dict[str, float]]


class _Buffer:
    """Events read but not learned yet (batches are cut from it)."""

    def __init__(self) -> None:
        self.offsets: list[np.ndarray] = []
        self.tables: list[pa.Table] = []
        self.n = 0
        self.first_seen = 0.0

    def add(self, batch: LogBatch) -> None:
        if batch.offsets.size == 0:
            return
        if self.n == 0:
            self.first_seen = time.monotonic()
        self.offsets.append(batch.offsets)
        self.tables.append(batch.events)
        self.n += int(batch.offsets.size)

    def last(self, default: int) -> int:
        return int(self.offsets[-1][-1]) if self.n else default

    def take(self, k: int) -> LogBatch:
        offsets = np.concatenate(self.offsets)
        table = pa.concat_tables(self.tables) if len(self.tables) > 1 else self.tables[0]
        out = LogBatch(offsets=offsets[:k], events=table.slice(0, k))
        rest = offsets[k:]
        self.offsets = [rest] if rest.size else []
        self.tables = [table.slice(k)] if rest.size else []
        self.n = int(rest.size)
        if self.n:
            self.first_seen = time.monotonic()
        return out


def _next_batch(buf: _Buffer, cfg: OnlineConfig, trainer: OnlineTrainer) -> LogBatch | None:
    """The next batch to learn, or None to wait for more events."""
    if buf.n >= cfg.batch_size:
        return buf.take(cfg.batch_size)
    if buf.n == 0:
        return None
    if cfg.until_offset is not None and buf.last(trainer.offset) >= cfg.until_offset:
        return buf.take(buf.n)
    waited = time.monotonic() - buf.first_seen
    if cfg.partial_after_s is not None and waited >= cfg.partial_after_s:
        return buf.take(buf.n)
    return None


def run_online(
    cfg: OnlineConfig,
    source: EventSource | RedisStreamLog | None = None,
    stop: threading.Event | None = None,
) -> OnlineSummary:
    """The trainer's main loop (returns on `stop`, `until_offset` or `idle_exit_s`)."""
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    store = ModelStore(cfg.store)
    clean_temp(store)
    ensure_base(store, cfg.model)
    trainer, lineage = resume(store, device, {"learning": cfg.learning})
    source = source or open_source(cfg.events, cfg.consumer)
    metrics = TrainerMetrics()
    if cfg.metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(cfg.metrics_port, addr="127.0.0.1", registry=metrics.registry)
    stop = stop or threading.Event()
    published: list[int] = []
    buf = _Buffer()
    last_publish = time.monotonic()
    last_event = time.monotonic()
    learned_at_publish = trainer.learned
    learned0, t0 = trainer.learned, time.perf_counter()
    while not stop.is_set():
        if cfg.until_offset is not None and trainer.offset >= cfg.until_offset:
            break
        want = cfg.batch_size - buf.n
        if want > 0:
            batch = source.read(buf.last(trainer.offset), want)
            if cfg.until_offset is not None and batch.offsets.size:
                keep = int(np.searchsorted(batch.offsets, cfg.until_offset, side="right"))
                batch = LogBatch(batch.offsets[:keep], batch.events.slice(0, keep))
            buf.add(batch)
        todo = _next_batch(buf, cfg, trainer)
        if todo is not None:
            trainer.learn(todo)
            last_event = time.monotonic()
            metrics.events.inc(todo.offsets.size)
            metrics.batches.inc()
            metrics.offset.set(trainer.offset)
        now = time.monotonic()
        if now - last_publish >= cfg.publish_every_s and trainer.learned > learned_at_publish:
            _publish(store, trainer, lineage, cfg, source, metrics, published)
            learned_at_publish, last_publish = trainer.learned, now
        if todo is None:
            if cfg.idle_exit_s is not None and now - last_event >= cfg.idle_exit_s:
                break
            stop.wait(cfg.poll_s)
    if trainer.learned > learned_at_publish:
        _publish(store, trainer, lineage, cfg, source, metrics, published)
    seconds = time.perf_counter() - t0
    return OnlineSummary(
        learned=trainer.learned,
        offset=trainer.offset,
        versions=published,
        events_per_s=(trainer.learned - learned0) / seconds if seconds else 0.0,
        rolling=trainer.metrics.rolling(),
    )


def _publish(
    store: ModelStore, trainer: OnlineTrainer, lineage: Lineage, cfg: OnlineConfig,
    source: EventSource | RedisStreamLog, metrics: TrainerMetrics, published: list[int],
) -> None:  # fmt: skip
    full = lineage.deltas_since_full + 1 >= cfg.compact_every
    manifest = publish(store, trainer, lineage, full=full)
    source.commit(trainer.offset)  # after the version (and its offset) is durable
    published.append(manifest.version)
    metrics.published.labels("full" if full else "delta").inc()
    metrics.version.set(manifest.version)
    metrics.observe(trainer.metrics.rolling())
    metrics.lag.set(max(source.last_offset() - trainer.offset, 0))
    prune_chains(store, cfg.keep)
    log.info("online: version %d (%s) at offset %d, %d events learned", manifest.version,
             "full" if full else "delta", trainer.offset, trainer.learned)  # fmt: skip
