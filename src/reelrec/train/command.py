"""`reelrec train`: load and validate data, fit features, train the ranker (early stopping on
the time-ordered tail), fit the retrievers, write a verified model directory."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from reelrec.config import TrainConfig
from reelrec.data.dataset import DatasetName, Interactions
from reelrec.device import describe, resolve_device, seed_everything
from reelrec.features import FeatureBuilder
from reelrec.models.bundle import make_ranker, ranker_tables, save_bundle
from reelrec.models.ranker import Ranker, RankerConfig
from reelrec.train.loop import LoopConfig, TrainHistory, fit

log = logging.getLogger(__name__)
console = Console()


@dataclass
class TrainResult:
    out: Path
    ranker: Ranker
    builder: FeatureBuilder
    history: TrainHistory
    retrievers: list[Any]
    rows: int


def load_data(
    dataset: DatasetName, data: Path | None, start: str | None, end: str | None
) -> Interactions:
    """Any dataset through its adapter; `sim` without a path simulates the default world."""
    if dataset == DatasetName.sim and data is None:
        from reelrec.sim import SimConfig, simulate_logs

        return simulate_logs(SimConfig())
    from reelrec.data import load_dataset

    return load_dataset(dataset, data, start, end)


def dead_letter_path(out: Path) -> Path:
    """Refused rows go next to the output: MODEL_DIR.dead_letter.parquet."""
    return out.with_name(out.name + ".dead_letter.parquet")


def train_command(cfg: TrainConfig) -> TrainResult:
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    data = load_data(cfg.dataset, cfg.data, cfg.start, cfg.end)
    written = data.dead.write(dead_letter_path(cfg.out))
    from reelrec.data import summary

    console.print(summary(data))
    if written:
        console.print(f"dead-lettered rows written to {written}")
    result = train_bundle(data, cfg, device)
    _print_summary(result, cfg, device)
    return result


def build_retrievers(data: Interactions, cfg: TrainConfig, device: torch.device) -> list[Any]:
    """Popular, trending and item-to-item always; the two-tower model when asked for."""
    from reelrec.models import retrieval

    retrievers: list[Any] = [
        retrieval.PopularRetriever(),
        retrieval.TrendingRetriever(),
        retrieval.ItemToItemRetriever(),
    ]
    if cfg.two_tower:
        retrievers.append(
            retrieval.TwoTowerRetriever(device=device, seed=cfg.seed, epochs=cfg.two_tower_epochs)
        )
    for r in retrievers:
        r.fit(data.events, data.items, data.users)
    return retrievers


def train_bundle(
    data: Interactions, cfg: TrainConfig, device: torch.device, show_progress: bool = True
) -> TrainResult:
    if data.events.num_rows == 0:
        from reelrec.errors import DataError

        raise DataError(
            cfg.data or "sim", "no rows left to train on after validation and date filters"
        )
    builder = FeatureBuilder(history_len=cfg.history_len)
    frame, state = builder.fit_transform(data.events, data.items, data.users, data.labels)
    fcfg = builder.config_
    ranker_cfg = RankerConfig(
        tasks=fcfg.tasks,
        watch_task=fcfg.watch_task,
        n_fields=len(fcfg.field_names),
        n_dense=fcfg.n_dense,
        history_len=cfg.history_len,
        embedding_dim=cfg.embedding_dim,
        pairwise_weights=cfg.pairwise_weights,
    )
    tables = ranker_tables(ranker_cfg, cfg.embedding_lr, cfg.seed, cfg.wide_lr)
    loop = LoopConfig(cfg.epochs, cfg.batch_size, cfg.lr, cfg.seed, show_progress,
                      wide_warmup_epochs=cfg.wide_warmup_epochs, user_chunk=cfg.user_chunk,
                      batch_order=cfg.batch_order, linear_start=dict(cfg.linear_start))  # fmt: skip
    probe = _choose_epochs(data, builder, ranker_cfg, tables, loop, cfg.val_fraction, device)
    # The final model learns from the whole window, the most recent days included.
    ranker = make_ranker(ranker_cfg, tables, device)
    final_loop = replace(loop, epochs=probe.best_epoch or cfg.epochs)
    history = fit(ranker, frame, None, final_loop, device)
    history.val_auc = probe.val_auc
    history.best_epoch = final_loop.epochs
    retrievers = build_retrievers(data, cfg, device)
    info = {
        "dataset": cfg.dataset.value,
        "start": cfg.start,
        "end": cfg.end,
        "rows": data.events.num_rows,
        "seed": cfg.seed,
        "epochs_run": len(history.val_auc) or cfg.epochs,
        "best_epoch": history.best_epoch,
        "val_auc": history.val_auc,
        "examples_per_s": history.examples_per_s,
        "step_loss": history.step_loss[:: max(1, len(history.step_loss) // 200)],
        "last_timestamp_ms": int(data.events.column("timestamp_ms")[-1].as_py()),
    }
    save_bundle(
        cfg.out,
        builder=builder,
        ranker=ranker,
        tables=tables,
        state=state,
        retrievers=retrievers,
        info=info,
    )
    return TrainResult(cfg.out, ranker, builder, history, retrievers, data.events.num_rows)


def _choose_epochs(data: Interactions, builder: FeatureBuilder, ranker_cfg: RankerConfig, tables: list[Any],
                   loop: LoopConfig, val_fraction: float, device: torch.device) -> TrainHistory:  # fmt: skip
    """Early stopping on the time-ordered tail: train on the head, watch the tail's AUC.

    The tail's user counters hold as of the head's end, as they would for a model trained up
    to there (see features/history.py). Returns the probe's history; with one
    epoch or no tail there is nothing to choose.
    """
    n_val = int(data.events.num_rows * val_fraction)
    if loop.epochs == 1 or n_val == 0:
        return TrainHistory(best_epoch=loop.epochs)
    n_head = data.events.num_rows - n_val
    frame, _ = builder.transform(
        data.events, after_cutoff=np.arange(data.events.num_rows) >= n_head
    )
    probe = make_ranker(ranker_cfg, tables, device)
    return fit(probe, frame.take(slice(0, n_head)), frame.take(slice(n_head, None)), loop, device)


def _print_summary(result: TrainResult, cfg: TrainConfig, device: torch.device) -> None:
    table = Table(title=f"reelrec train: {cfg.dataset.value}")
    table.add_column("what")
    table.add_column("value", justify="right")
    h = result.history
    table.add_row("rows trained on", f"{result.rows:,}")
    table.add_row("device", describe(device))
    table.add_row("tasks", ", ".join(result.builder.config_.all_tasks))
    table.add_row("epochs (best)", f"{len(h.val_auc) or cfg.epochs} ({h.best_epoch})")
    if h.val_auc:
        table.add_row("tail AUC (first task)", f"{max(h.val_auc):.4f}")
    table.add_row("train examples/s", f"{h.examples_per_s:,.0f}")
    table.add_row("retrievers", ", ".join(r.name for r in result.retrievers))
    table.add_row("model directory", str(result.out))
    console.print(table)
