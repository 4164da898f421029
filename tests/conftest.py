"""Shared fixtures: small canonical tables built in memory (tests never read ../shared), and
one REAL model directory trained on a small simulated world, once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from reelrec.data.dataset import Interactions
from reelrec.data.records import EVENT_SCHEMA, ITEM_SCHEMA, LABELS, USER_SCHEMA

DAY_MS = 86_400_000
START_MS = 1_650_844_800_000  # 2022-04-25 00:00 UTC


def make_interactions(
    n_users: int = 40, n_items: int = 60, n_events: int = 2000, days: int = 4, seed: int = 0
) -> Interactions:
    """Random but learnable canonical data: long_view depends on item quality and on a
    user-item topic match."""
    rng = np.random.default_rng(seed)
    user_topic = rng.integers(0, 4, n_users)
    item_topic = rng.integers(0, 4, n_items)
    users = rng.integers(0, n_users, n_events)
    items = rng.integers(0, n_items, n_events)
    ts = np.sort(START_MS + rng.integers(0, days * DAY_MS, n_events))
    ts[5] = ts[4]  # at least one tie in time
    match = user_topic[users] == item_topic[items]
    quality = rng.uniform(-0.25, 0.25, n_items)  # some videos are simply better
    p_long = np.clip(np.where(match, 0.6, 0.15) + quality[items], 0.02, 0.98)
    long_view = (rng.random(n_events) < p_long).astype(np.int8)
    duration = rng.integers(5_000, 120_000, n_items)
    watch = (
        duration[items]
        * np.where(long_view == 1, rng.uniform(0.6, 1.2, n_events), rng.uniform(0, 0.4, n_events))
    ).astype(np.int64)
    cols: dict[str, pa.Array] = {
        "user_id": pa.array(users * 7 + 1000, pa.int64()),
        "item_id": pa.array(items * 13 + 5, pa.int64()),
        "timestamp_ms": pa.array(ts, pa.int64()),
        "tab": pa.array(rng.integers(0, 3, n_events), pa.int64()),
        "hour": pa.array((ts // 3_600_000) % 24, pa.int64()),
        "watch_ms": pa.array(watch, pa.int64()),
        "duration_ms": pa.array(duration[items], pa.int64()),
    }
    probs = {
        "is_click": 0.5,
        "is_like": 0.1,
        "is_follow": 0.05,
        "is_comment": 0.03,
        "is_share": 0.02,
        "is_hate": 0.01,
    }
    for label in LABELS:
        if label == "long_view":
            cols[label] = pa.array(long_view, pa.int8())
        else:
            base = probs[label] * (1.5 if label != "is_hate" else 0.5)
            cols[label] = pa.array(
                (rng.random(n_events) < np.where(match, base, base / 3)).astype(np.int8), pa.int8()
            )
    events = pa.Table.from_pydict(cols, schema=EVENT_SCHEMA)
    item_ids = np.arange(n_items) * 13 + 5
    items_t = pa.Table.from_pydict(
        {
            "item_id": pa.array(item_ids, pa.int64()),
            "author_id": pa.array(rng.integers(0, 10, n_items) + 90_000, pa.int64()),
            "duration_ms": pa.array(duration, pa.int64()),
            "upload_ms": pa.array(START_MS - rng.integers(0, 10 * DAY_MS, n_items), pa.int64()),
            "music_id": pa.array(rng.integers(0, 5, n_items), pa.int64()),
            "tags": pa.array([[int(t), int(t) + 10] for t in item_topic], pa.list_(pa.int64())),
            "visible": pa.array(rng.random(n_items) > 0.05, pa.bool_()),
            "topic": pa.array(item_topic, pa.int64()),
        }
    )
    users_t = pa.Table.from_pydict(
        {
            "user_id": pa.array(np.arange(n_users) * 7 + 1000, pa.int64()),
            "age_bucket": pa.array(rng.integers(0, 5, n_users), pa.int64()),
        }
    )
    assert (
        items_t.schema.names[:7] == ITEM_SCHEMA.names
        and users_t.schema.names[:1] == USER_SCHEMA.names
    )
    return Interactions(events, items_t, users_t, LABELS, "test", n_events)


@pytest.fixture
def interactions() -> Interactions:
    return make_interactions()


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reelrec.sim import SimConfig, write_logs

    out = tmp_path_factory.mktemp("sim")
    write_logs(SimConfig(users=150, videos=600, days=2, seed=3), out)
    return out


@pytest.fixture(scope="session")
def model_dir(sim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory trained by `reelrec train --dataset sim --data SIM_DIR`."""
    from reelrec.config import TrainConfig
    from reelrec.train import train_command

    out = tmp_path_factory.mktemp("models") / "model"
    train_command(
        TrainConfig(dataset="sim", data=sim_dir, out=out, device="cpu", epochs=1, batch_size=512)  # type: ignore[arg-type]
    )
    return out


@pytest.fixture(scope="session")
def feed_model(model_dir: Path) -> Any:
    from reelrec.models import load_feed_model

    return load_feed_model(model_dir)
