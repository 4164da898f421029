"""`reelrec replay`: stream a historical log in time order through the online trainer and
compare its progressive-validation metrics with the frozen model's on the same events.

Both models see the same batches, and both carry the causal feature state (histories,
counters) forward batch by batch; only the online one updates its weights. So the gap is
what learning from the stream buys, nothing else. Each gap comes with a 95% interval from a
paired bootstrap over users (`reelrec.eval.compare`): gains of a few thousandths are common
here, and the interval says which of them are more than noise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from reelrec.config import parse_day
from reelrec.data.dataset import DatasetName
from reelrec.device import resolve_device, seed_everything
from reelrec.errors import ConfigError, DataError
from reelrec.eval.compare import Gain, paired_gain
from reelrec.eval.metrics import LabelMetrics
from reelrec.models.bundle import load_feed_model
from reelrec.online.metrics import ProgressiveMetrics
from reelrec.online.trainer import OnlineLearning, OnlineTrainer
from reelrec.serve.eventlog import LogBatch
from reelrec.store.atomic import atomic_write_json
from reelrec.train.loop import predict

console = Console()


@dataclass
class ReplayConfig:
    """`reelrec replay` options, 1:1."""

    dataset: DatasetName
    data: Path
    model: Path
    start: str | None = None
    end: str | None = None
    json_out: Path | None = None
    batch_size: int = 512
    bootstrap: int = 200  # paired user-bootstrap replicates for the gains' intervals
    learning: OnlineLearning = field(default_factory=OnlineLearning)
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        self.dataset = DatasetName(self.dataset)
        parse_day(self.start, "--start")
        parse_day(self.end, "--end")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size}: must be >= 1")
        if self.bootstrap < 0:
            raise ConfigError(f"bootstrap={self.bootstrap}: must be >= 0")


@dataclass
class ReplayResult:
    online: dict[str, LabelMetrics]
    frozen: dict[str, LabelMetrics]
    gains: dict[str, dict[str, Gain]]  # label -> metric -> online minus frozen, with interval
    events: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        def part(m: dict[str, LabelMetrics]) -> dict[str, dict[str, float]]:
            return {k: {"auc": v.auc, "gauc": v.gauc, "logloss": v.logloss} for k, v in m.items()}

        gains = {k: {m: g.to_json() for m, g in v.items()} for k, v in self.gains.items()}
        return {"online": part(self.online), "frozen": part(self.frozen), "gain": gains,
                "events": self.events}  # fmt: skip


def replay(
    events: Any,
    model: Path,
    device: torch.device,
    batch_size: int = 512,
    learning: OnlineLearning | None = None,
    bootstrap: int = 200,
) -> ReplayResult:
    """Events (EVENT_SCHEMA, time order) through an online and a frozen copy of `model`."""
    online = load_feed_model(model, device)
    frozen = load_feed_model(model, device)
    tasks = online.builder.config_.tasks
    trainer = OnlineTrainer(
        online, learning=learning, device=device, metrics=ProgressiveMetrics(tasks, keep_all=True)
    )
    frozen_metrics = ProgressiveMetrics(tasks, keep_all=True)
    t0 = time.perf_counter()
    n = events.num_rows
    for lo in range(0, n, batch_size):
        part = events.slice(lo, batch_size)
        offsets = np.arange(lo + 1, lo + 1 + part.num_rows, dtype=np.int64)
        frame, after = frozen.transform(part)
        # the frozen model's features follow the same counter rule as the online one's
        frozen.state = frozen.state.advance(
            after, live_item_counters=trainer.learning.live_item_counters
        )
        probs, _ = predict(frozen.ranker, frame, len(frame), device)
        assert frame.labels is not None
        frozen_metrics.update(frame.labels, probs, frame.user_id)
        trainer.learn(LogBatch(offsets=offsets, events=part))
    seconds = time.perf_counter() - t0
    y, p_online, users = trainer.metrics.everything()
    _, p_frozen, _ = frozen_metrics.everything()
    gains = {
        t: paired_gain(y[:, i], p_frozen[:, i], p_online[:, i], users, bootstrap)
        for i, t in enumerate(tasks)
        if 0 < y[:, i].sum() < y.shape[0]  # a one-class label has no AUC to compare
    }
    return ReplayResult(
        online=trainer.metrics.summary(),
        frozen=frozen_metrics.summary(),
        gains=gains,
        events=n,
        seconds=seconds,
    )


def replay_command(cfg: ReplayConfig) -> ReplayResult:
    from reelrec.data import load_dataset

    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    data = load_dataset(cfg.dataset, cfg.data, cfg.start, cfg.end)
    if data.events.num_rows == 0:
        raise DataError(cfg.data, f"no events between {cfg.start} and {cfg.end}")
    result = replay(data.events, cfg.model, device, cfg.batch_size, cfg.learning, cfg.bootstrap)
    if cfg.json_out is not None:
        atomic_write_json(result.to_json(), cfg.json_out)
    table = Table(title=f"reelrec replay: {result.events:,} events, progressive validation")
    for col in ("label", "AUC online", "AUC frozen", "GAUC online", "GAUC frozen",
                "logloss online", "logloss frozen"):  # fmt: skip
        table.add_column(col, justify="left" if col == "label" else "right")
    for name, on in result.online.items():
        fr = result.frozen[name]
        table.add_row(name, f"{on.auc:.4f}", f"{fr.auc:.4f}", f"{on.gauc:.4f}", f"{fr.gauc:.4f}",
                      f"{on.logloss:.4f}", f"{fr.logloss:.4f}")  # fmt: skip
    console.print(table)
    console.print(_gain_table(result.gains))
    console.print(f"{result.events / result.seconds:,.0f} events/s (online + frozen)")
    return result


def _gain_table(gains: dict[str, dict[str, Gain]]) -> Table:
    table = Table(title="online minus frozen (logloss: lower wins), 95% paired user bootstrap")
    for col in ("label", "metric", "gain", "low", "high"):
        table.add_column(col, justify="left" if col in ("label", "metric") else "right")
    for name, per_metric in gains.items():
        for metric, g in per_metric.items():
            table.add_row(name, metric, f"{g.gain:+.4f}", f"{g.low:+.4f}", f"{g.high:+.4f}")
    return table
