"""Fixtures for model tests: one real model trained on a small simulated world."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reelrec.config import TrainConfig
    from reelrec.sim import SimConfig, write_logs
    from reelrec.train import train_command

    sim = tmp_path_factory.mktemp("sim")
    write_logs(SimConfig(users=120, videos=500, days=2, seed=5), sim)
    out: Path = tmp_path_factory.mktemp("models") / "model"
    train_command(
        TrainConfig(dataset="sim", data=sim, out=out, device="cpu", epochs=1, batch_size=512)  # type: ignore[arg-type]
    )
    return out


@pytest.fixture(scope="session")
def model(model_dir: Path) -> Any:
    from reelrec.models import load_feed_model

    return load_feed_model(model_dir)
