from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from reelrec.data.dataset import Interactions
from reelrec.data.records import EVENT_SCHEMA, ITEM_SCHEMA, LABELS, MAX_WATCH_MS
from reelrec.sim import DAY_MS, SimConfig, World, simulate_logs, write_logs
from reelrec.sim.world import LONG_VIEW_MS

from .conftest import SMALL


def col(t, name: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(t.column(name))


def test_same_seed_same_tables(small_logs: Interactions) -> None:
    again = simulate_logs(SMALL)  # a fresh World, not the fixture's
    assert again.events.equals(small_logs.events)
    assert again.items.equals(small_logs.items)
    assert again.users.equals(small_logs.users)


def test_other_seed_other_events(small_logs: Interactions) -> None:
    cfg = SimConfig(**{**SMALL.to_dict(), "seed": 4})
    other = simulate_logs(cfg)
    assert not other.events.equals(small_logs.events)


def test_schemas(small_logs: Interactions) -> None:
    ev, items, users = small_logs.events, small_logs.items, small_logs.users
    assert ev.schema.equals(EVENT_SCHEMA)
    assert items.schema.names[: len(ITEM_SCHEMA)] == ITEM_SCHEMA.names
    for f in ITEM_SCHEMA:
        assert items.schema.field(f.name).type == f.type
    assert "topic" in items.schema.names
    for table in (items.select(items.schema.names[len(ITEM_SCHEMA) :]), users):
        assert all(str(f.type) == "int64" for f in table.schema), table.schema
    assert {"age_bucket", "activity_bucket", "primary_topic"} <= set(users.schema.names)
    assert small_logs.rows_in == ev.num_rows and small_logs.dead.total == 0
    assert small_logs.labels == LABELS


def test_event_values_are_valid(small_logs: Interactions) -> None:
    ev, cfg = small_logs.events, SMALL
    ts = col(ev, "timestamp_ms")
    assert (np.diff(ts) >= 0).all()
    assert ts.min() >= cfg.start_ms and ts.max() < cfg.end_ms + DAY_MS
    np.testing.assert_array_equal(col(ev, "hour"), (ts // 3_600_000) % 24)
    watch, dur = col(ev, "watch_ms"), col(ev, "duration_ms")
    assert watch.min() >= 0 and watch.max() <= MAX_WATCH_MS
    for label in LABELS:
        assert set(np.unique(col(ev, label))) <= {0, 1}
    lv = col(ev, "long_view") == 1
    assert (watch[lv] >= np.minimum(dur[lv], LONG_VIEW_MS)).all()
    assert (col(ev, "is_click")[lv] == 1).all()
    # every event's item is in the item table, was uploaded before it, and is visible
    items = small_logs.items
    pos = np.searchsorted(col(items, "item_id"), col(ev, "item_id"))
    assert (col(items, "item_id")[pos] == col(ev, "item_id")).all()
    assert (col(items, "upload_ms")[pos] <= ts).all()
    assert col(items, "visible")[pos].all()
    np.testing.assert_array_equal(col(items, "duration_ms")[pos], dur)
    assert set(np.unique(col(ev, "user_id"))) <= set(col(small_logs.users, "user_id"))


def test_label_rates_are_plausible(small_logs: Interactions) -> None:
    ev = small_logs.events
    rate = {k: col(ev, k).mean() for k in LABELS}
    assert 0.3 < rate["is_click"] < 0.65
    assert 0.2 < rate["long_view"] < 0.45
    assert 0.015 < rate["is_like"] < 0.06
    assert 0.0005 < rate["is_follow"] < 0.01
    assert 0.001 < rate["is_comment"] < 0.015
    assert 0.0005 < rate["is_share"] < 0.01
    assert 0.0005 < rate["is_hate"] < 0.01
    events_per_user_day = ev.num_rows / (SMALL.users * SMALL.days)
    assert 10 < events_per_user_day < 60


def test_activity_is_heavy_tailed(small_logs: Interactions) -> None:
    _, counts = np.unique(col(small_logs.events, "user_id"), return_counts=True)
    counts = np.sort(np.concatenate([counts, np.zeros(SMALL.users - counts.size, int)]))[::-1]
    top = counts[: SMALL.users // 10].sum() / counts.sum()
    assert top > 0.30


def test_new_uploads_are_watched_every_day(small_logs: Interactions) -> None:
    ev, items = small_logs.events, small_logs.items
    ts = col(ev, "timestamp_ms")
    up = col(items, "upload_ms")[np.searchsorted(col(items, "item_id"), col(ev, "item_id"))]
    for d in range(SMALL.days):
        lo = SMALL.start_ms + d * DAY_MS
        today = (ts >= lo) & (ts < lo + DAY_MS)
        fresh = today & (up >= lo)  # videos uploaded that same day
        assert np.unique(col(ev, "item_id")[fresh]).size > 30


def test_affinity_drives_long_views(small_logs: Interactions, small_world: World) -> None:
    ev, w = small_logs.events, small_world
    u, v = w.user_index(col(ev, "user_id")), w.item_index(col(ev, "item_id"))
    aff = w.affinity(u, v, col(ev, "timestamp_ms"))
    lv = col(ev, "long_view")
    q = np.quantile(aff, [0.25, 0.5, 0.75])
    bucket = np.searchsorted(q, aff)
    rates = [lv[bucket == b].mean() for b in range(4)]
    assert all(a < b for a, b in zip(rates, rates[1:], strict=False)), rates
    assert rates[3] > rates[0] + 0.15, rates


def test_write_logs_writes_the_canonical_layout(tmp_path: Path) -> None:
    cfg = SimConfig(users=50, videos=200, days=1, uploads_per_day=20, seed=1)
    data = write_logs(cfg, tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["events.parquet", "items.parquet", "sim_config.json", "users.parquet"]
    assert pq.read_table(tmp_path / "out" / "events.parquet").equals(data.events)
    assert pq.read_table(tmp_path / "out" / "items.parquet").equals(data.items)
    assert pq.read_table(tmp_path / "out" / "users.parquet").equals(data.users)
    back = SimConfig.from_dict(json.loads((tmp_path / "out" / "sim_config.json").read_text()))
    assert back == cfg


def test_logging_policy_mix_matters() -> None:
    """All-random logs are less engaging than all-personalised ones (same world)."""
    base = {**SMALL.to_dict(), "users": 300, "days": 1}
    rand = simulate_logs(SimConfig(**{**base, "log_mix": (0.0, 1.0, 0.0)})).events
    pers = simulate_logs(SimConfig(**{**base, "log_mix": (0.0, 0.0, 1.0)})).events
    assert col(pers, "long_view").mean() > col(rand, "long_view").mean() + 0.03
    assert pers.num_rows > rand.num_rows  # better feeds: longer sessions


def test_simulate_logs_with_other_world_fails(small_world: World) -> None:
    with pytest.raises(ValueError, match="different SimConfig"):
        simulate_logs(SimConfig(users=10), world=small_world)


def test_generic_adapter_reads_the_logs_back_unchanged(tmp_path: Path) -> None:
    from reelrec.data import load_events

    cfg = SimConfig(users=80, videos=300, days=2, uploads_per_day=50, seed=2)
    data = write_logs(cfg, tmp_path)
    back = load_events(tmp_path)
    assert back.dead.total == 0
    assert back.events.equals(data.events)
    assert back.items.num_rows == data.items.num_rows
    assert back.users.column_names == data.users.column_names
