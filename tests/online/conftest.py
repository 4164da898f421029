"""Fixtures: a REAL model trained on the first days of a small simulated world, and the
last day's events (the live stream the online trainer consumes)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from reelrec.data.records import Event


@pytest.fixture(scope="session")
def world_split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pa.Table]:
    from reelrec.config import TrainConfig
    from reelrec.data.dataset import DatasetName
    from reelrec.demo import split_last_day
    from reelrec.sim import SimConfig, simulate_logs
    from reelrec.train.command import train_bundle

    sim = SimConfig(users=80, videos=300, days=3, seed=5)
    data = simulate_logs(sim)
    train, n = split_last_day(data, sim.end_ms)
    out = tmp_path_factory.mktemp("online") / "model"
    cfg = TrainConfig(dataset=DatasetName.sim, out=out, device="cpu", epochs=1,
                      batch_size=512, two_tower=False)  # fmt: skip
    train_bundle(train, cfg, torch.device("cpu"), show_progress=False)
    return out, data.events.slice(n)


@pytest.fixture(scope="session")
def model_dir(world_split: tuple[Path, pa.Table]) -> Path:
    return world_split[0]


@pytest.fixture(scope="session")
def live_events(world_split: tuple[Path, pa.Table]) -> list[Event]:
    fields = list(Event.model_fields)
    rows = world_split[1].select([f for f in fields if f in world_split[1].column_names])
    return [Event(**r) for r in rows.to_pylist()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free loopback port (skips when it is not installed)."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    import redis

    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.skip("redis-server did not start")
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)
