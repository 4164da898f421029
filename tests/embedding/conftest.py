"""Fixtures for the embedding tests: a device parametrisation (cpu, plus the machine's
accelerator when reelrec.device finds one) and small builders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reelrec.batch import Jagged, KeyedJagged
from reelrec.device import resolve_device
from reelrec.embedding import DynamicEmbedding


def _accelerator() -> torch.device | None:
    dev = resolve_device("auto")
    return None if dev.type == "cpu" else dev


@pytest.fixture(params=["cpu", "cpu-portable", pytest.param("accelerator", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> torch.device:
    """cpu (numba kernels), cpu-portable (the torch index_select / index_add_ path that
    accelerators run), and the available accelerator (cuda, npu, xpu, mps) via
    reelrec.device; skipped where there is none."""
    if request.param == "cpu":
        return torch.device("cpu")
    if request.param == "cpu-portable":
        monkeypatch.setattr(DynamicEmbedding, "numba_on_cpu", False)
        return torch.device("cpu")
    dev = _accelerator()
    if dev is None:
        pytest.skip("no accelerator on this machine")
    return dev


def jagged(rows: list[list[int]]) -> Jagged:
    """[[7], [], [3, 3]] -> Jagged with values [7, 3, 3] and lengths [1, 0, 2]."""
    values = [v for r in rows for v in r]
    return Jagged(
        values=torch.tensor(values, dtype=torch.int64),
        lengths=torch.tensor([len(r) for r in rows], dtype=torch.int64),
    )


def random_kj(
    rng: np.random.Generator, features: list[str], batch: int, max_len: int, num_ids: int
) -> KeyedJagged:
    """Ragged random ids (duplicates likely) for each feature."""
    out = {}
    for f in features:
        lengths = rng.integers(0, max_len + 1, batch)
        values = rng.integers(0, num_ids, int(lengths.sum()))
        out[f] = Jagged(torch.from_numpy(values), torch.from_numpy(lengths))
    return KeyedJagged(out)
