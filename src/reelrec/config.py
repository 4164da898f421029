"""Typed configs for the commands. CLI options map 1:1 onto these fields; `__post_init__`
validates and names the field that is wrong."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from reelrec.data.dataset import DatasetName
from reelrec.errors import ConfigError


def parse_day(value: str | None, option: str) -> str | None:
    """Check a YYYYMMDD date option; returns it unchanged."""
    if value is None:
        return None
    try:
        dt.datetime.strptime(value, "%Y%m%d")
    except ValueError:
        raise ConfigError(
            f"{option} {value!r}: expected a date as YYYYMMDD, e.g. 20220501"
        ) from None
    return value


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{name}={value}: must be > 0")


def _check_input(
    dataset: DatasetName, data: Path | None, start: str | None, end: str | None
) -> None:
    """What train and evaluate both check about the data they read."""
    parse_day(start, "--start")
    parse_day(end, "--end")
    if dataset != DatasetName.sim and data is None:
        raise ConfigError(f"--data is required for --dataset {dataset.value}")


@dataclass
class TrainConfig:
    """`reelrec train`: what to read, where to write, how to train."""

    dataset: DatasetName
    out: Path
    data: Path | None = None
    start: str | None = None
    end: str | None = None
    device: str = "auto"
    epochs: int = 3  # the most epochs; early stopping on the time-ordered tail may use fewer
    batch_size: int = 1024
    lr: float = 2e-3  # dense layers (Adam)
    embedding_lr: float = 0.05  # embedding rows (row-wise Adagrad, fused)
    wide_lr: float = 0.02  # the wide part's per-id biases (row-wise Adagrad)
    wide_warmup_epochs: int = 1  # the wide part alone first (see LoopConfig)
    embedding_dim: int = 16
    history_len: int = 20
    val_fraction: float = 0.1  # time-ordered tail used for early stopping
    seed: int = 0
    two_tower: bool = True
    two_tower_epochs: int = 4

    def __post_init__(self) -> None:
        self.dataset = DatasetName(self.dataset)
        _check_input(self.dataset, self.data, self.start, self.end)
        for name in ("epochs", "batch_size", "lr", "embedding_lr", "wide_lr", "embedding_dim",
                     "history_len", "two_tower_epochs"):  # fmt: skip
            _positive(name, getattr(self, name))
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction={self.val_fraction}: must be in [0, 1)")
        if self.wide_warmup_epochs < 0:
            raise ConfigError(f"wide_warmup_epochs={self.wide_warmup_epochs}: must be >= 0")


@dataclass
class EvalConfig:
    """`reelrec evaluate`: which model on which rows; where to write results."""

    model: Path
    dataset: DatasetName
    data: Path | None = None
    start: str | None = None
    end: str | None = None
    json_out: Path | None = None
    report: Path | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        self.dataset = DatasetName(self.dataset)
        _check_input(self.dataset, self.data, self.start, self.end)
