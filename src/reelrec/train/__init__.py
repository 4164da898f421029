"""Batch training: the loop, and the `reelrec train` command."""

from reelrec.train.command import TrainResult, load_data, train_bundle, train_command
from reelrec.train.loop import LoopConfig, TrainHistory, fit, predict

__all__ = [
    "LoopConfig",
    "TrainHistory",
    "TrainResult",
    "fit",
    "load_data",
    "predict",
    "train_bundle",
    "train_command",
]
