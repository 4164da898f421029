from __future__ import annotations

import numpy as np

from reelrec.data.records import ITEM_SCHEMA, USER_SCHEMA
from reelrec.sim import DAY_MS, ITEM_ID_BASE, SimConfig, World

from .conftest import SMALL


def _state(w: World) -> list[np.ndarray]:
    return [w.interest, w.trend, w.upload_ms, w.author, w.topic, w.quality, w.z_item,
            w.duration_ms, w.visible, w.activity, w.music_id]  # fmt: skip


def test_same_seed_same_world(small_world: World) -> None:
    other = World(SMALL)
    for a, b in zip(_state(small_world), _state(other), strict=True):
        np.testing.assert_array_equal(a, b)


def test_other_seed_other_world(small_world: World) -> None:
    other = World(SimConfig(**{**SMALL.to_dict(), "seed": SMALL.seed + 1}))
    assert not np.array_equal(small_world.quality[:100], other.quality[:100])


def test_interests_are_distributions_that_drift(small_world: World) -> None:
    inter = small_world.interest
    np.testing.assert_allclose(inter.sum(-1), 1.0, atol=1e-4)
    first, last = inter[0], inter[-1]
    moved = np.abs(first - last).sum(1)  # L1 change per user over the horizon
    assert 0.05 < float(np.median(moved)) < 1.5


def test_uploads_arrive_every_day(small_world: World) -> None:
    cfg = small_world.cfg
    for d in range(cfg.horizon_days):
        lo, hi = cfg.start_ms + d * DAY_MS, cfg.start_ms + (d + 1) * DAY_MS
        n = int(((small_world.upload_ms >= lo) & (small_world.upload_ms < hi)).sum())
        assert n == cfg.uploads_per_day
    assert (np.diff(small_world.upload_ms) >= 0).all()  # ids in upload order


def test_durations_and_visibility(small_world: World) -> None:
    d = small_world.duration_ms
    assert d.min() >= 5_000 and d.max() <= 300_000
    assert 10_000 < np.median(d) < 40_000
    hidden = 1.0 - small_world.visible.mean()
    assert 0.005 < hidden < 0.05


def test_topics_trend_and_fade(small_world: World) -> None:
    tr = small_world.trend  # (T, hours)
    assert tr.max() > 0.5  # some topic trends
    # ... and a trend fades: the hottest topic-hour is far below its peak a day later or before
    t, h = np.unravel_index(int(tr.argmax()), tr.shape)
    other = tr[t, h + 24] if h + 24 < tr.shape[1] else tr[t, h - 24]
    assert other < 0.5 * tr[t, h]


def test_catalog_is_the_uploaded_prefix(small_world: World) -> None:
    cfg = small_world.cfg
    a = small_world.catalog(cfg.start_ms)
    b = small_world.catalog(cfg.start_ms + DAY_MS)
    assert a.num_rows == cfg.videos
    assert b.num_rows == cfg.videos + cfg.uploads_per_day
    for f in ITEM_SCHEMA:
        assert b.schema.field(f.name).type == f.type
    up = np.asarray(b.column("upload_ms"))
    assert up.max() <= cfg.start_ms + DAY_MS
    vis = small_world.catalog(cfg.start_ms, visible_only=True)
    assert vis.num_rows == int(small_world.visible[: cfg.videos].sum())
    ids = small_world.available_item_ids(cfg.start_ms)
    np.testing.assert_array_equal(ids, np.asarray(vis.column("item_id")))


def test_tags_hold_topic_and_subtags(small_world: World) -> None:
    t = small_world.catalog(small_world.cfg.end_ms)
    tags = t.column("tags").to_pylist()
    topic = np.asarray(t.column("topic"))
    assert all(2 <= len(x) <= 3 for x in tags)
    assert all(x[0] == 1 + tp for x, tp in zip(tags, topic, strict=True))


def test_users_table(small_world: World) -> None:
    u = small_world.users_table()
    assert u.schema.field("user_id").type == USER_SCHEMA.field("user_id").type
    for c in ("age_bucket", "activity_bucket", "primary_topic"):
        assert str(u.schema.field(c).type) == "int64"
    act = np.asarray(u.column("activity_bucket"))
    assert set(np.unique(act)) == set(range(5))


def test_index_of_unknown_ids_is_minus_one(small_world: World) -> None:
    ids = np.array([ITEM_ID_BASE - 1, ITEM_ID_BASE, ITEM_ID_BASE + small_world.n_items, -7, 0])
    np.testing.assert_array_equal(small_world.item_index(ids), [-1, 0, -1, -1, -1])
    assert small_world.user_index(np.array([0]))[0] == -1


def test_utility_all_matches_utility(small_world: World) -> None:
    now = small_world.cfg.end_ms + 3_600_000
    for u in (0, 17, 599):
        a = small_world.utility_all(u, now)
        b = small_world.utility(np.full(a.size, u), np.arange(a.size), now)
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_fresh_and_trending_videos_are_more_engaging(small_world: World) -> None:
    w = small_world
    now = w.cfg.end_ms
    m = int(w.n_uploaded(now))
    u = np.zeros(m, dtype=np.int64)
    dyn = w.utility(u, np.arange(m), now) - w.utility(u, np.arange(m), now, dynamic=False)
    assert (dyn >= -1e-5).all()
    newest = np.argsort(w.upload_ms[:m])[-50:]
    oldest = np.argsort(w.upload_ms[:m])[:50]
    assert dyn[newest].mean() > dyn[oldest].mean() + 0.3
