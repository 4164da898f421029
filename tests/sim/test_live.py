from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from reelrec.data.records import EVENT_SCHEMA
from reelrec.errors import ConfigError
from reelrec.sim import (
    HOUR_MS,
    ITEM_ID_BASE,
    LiveResult,
    OraclePolicy,
    PopularPolicy,
    RandomPolicy,
    SimConfig,
    World,
    run_live,
    simulate_logs,
)

# Big enough for robust margins, small enough to run the three policies in a few seconds.
LIVE = SimConfig(users=1000, videos=3000, days=3, uploads_per_day=600, seed=11)
SESSIONS = 300


@pytest.fixture(scope="module")
def world() -> World:
    return World(LIVE)


@pytest.fixture(scope="module")
def logs(world: World) -> pa.Table:
    return simulate_logs(LIVE, world=world).events


def _paired_z(a: LiveResult, b: LiveResult) -> float:
    """z statistic of mean(a - b) over the same sessions (common random numbers)."""
    mean, se = a.paired_difference(b)
    return mean / se


def test_oracle_beats_popular_beats_random(world: World, logs: pa.Table) -> None:
    popular = PopularPolicy(world)
    popular.observe(logs)
    res = {
        name: run_live(world, p, hours=12, sessions=SESSIONS)
        for name, p in [
            ("random", RandomPolicy(world)),
            ("popular", popular),
            ("oracle", OraclePolicy(world)),
        ]  # fmt: skip
    }
    # same users at the same times for every policy
    for r in res.values():
        np.testing.assert_array_equal(r.session_user_id, res["random"].session_user_id)
        np.testing.assert_array_equal(r.session_start_ms, res["random"].session_start_ms)
        assert r.events.schema.equals(EVENT_SCHEMA) and r.wasted_slots == 0
    assert _paired_z(res["oracle"], res["popular"]) > 4
    assert _paired_z(res["popular"], res["random"]) > 4
    # pairing cancels the spread between sessions: far below the unpaired standard error
    _, se = res["oracle"].paired_difference(res["popular"])
    assert se < 0.8 * np.hypot(res["oracle"].watch_ms_se, res["popular"].watch_ms_se)
    assert res["oracle"].items_per_session > res["random"].items_per_session  # longer sessions
    assert res["oracle"].label_rates["long_view"] > res["random"].label_rates["long_view"]


def test_feedback_helps_popular(world: World, logs: pa.Table) -> None:
    """Learning from live feedback (trends, new uploads) beats a frozen popularity."""
    online, frozen = PopularPolicy(world), PopularPolicy(world)
    online.observe(logs)
    frozen.observe(logs)
    a = run_live(world, online, hours=24, sessions=SESSIONS, feedback_every=10)
    b = run_live(world, frozen, hours=24, sessions=SESSIONS, feedback_every=10**9)
    assert _paired_z(a, b) > 2


def test_paired_difference_refuses_runs_of_different_sessions(world: World) -> None:
    a = run_live(world, RandomPolicy(world), hours=12, sessions=20)
    b = run_live(world, RandomPolicy(world), hours=12, sessions=21)
    assert a.paired_difference(a) == (0.0, 0.0)
    with pytest.raises(ConfigError, match="different sessions"):
        a.paired_difference(b)


def test_same_policy_same_result(world: World) -> None:
    a = run_live(world, RandomPolicy(world, seed=5), hours=6, sessions=40)
    b = run_live(world, RandomPolicy(world, seed=5), hours=6, sessions=40)
    assert a.events.equals(b.events)
    assert a.watch_ms_per_session == b.watch_ms_per_session


class _Recorder:
    """Serves the oracle's picks and records what it observes."""

    def __init__(self, world: World) -> None:
        self.inner = OraclePolicy(world)
        self.calls: list[tuple[int, pa.Table]] = []
        self.now = 0

    def recommend(self, user_id: int, now_ms: int, n: int) -> np.ndarray:
        self.now = max(self.now, now_ms)
        return self.inner.recommend(user_id, now_ms, n)

    def observe(self, events: pa.Table) -> None:
        self.calls.append((self.now, events))


def test_observe_gets_every_event_once_in_order(world: World) -> None:
    rec = _Recorder(world)
    res = run_live(world, rec, hours=6, sessions=60, feedback_every=7)
    assert len(rec.calls) >= 60 // 7
    got = pa.concat_tables([e for _, e in rec.calls])
    assert got.num_rows == res.events.num_rows
    for _, e in rec.calls:
        assert e.schema.equals(EVENT_SCHEMA)
        assert (np.diff(np.asarray(e.column("timestamp_ms"))) >= 0).all()
    ts = np.asarray(res.events.column("timestamp_ms"))
    assert (np.diff(ts) >= 0).all()


class _Junk:
    """Returns unknown, hidden, future, duplicate, negative ids, too many or too few."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.k = 0

    def recommend(self, user_id: int, now_ms: int, n: int) -> np.ndarray:
        w, self.k = self.world, self.k + 1
        hidden = w.item_ids[~w.visible][:1]
        future = w.item_ids[-1:]
        ok = w.available_item_ids(now_ms)[:2]
        pages = [
            np.array([ITEM_ID_BASE - 5, -1, 2**62], dtype=np.int64),
            np.concatenate([hidden, future, ok, ok]),
            np.array([1.5, 2.5]),
            np.empty(0, dtype=np.int64),
            np.arange(ITEM_ID_BASE, ITEM_ID_BASE + 5 * n),
        ]
        return pages[self.k % len(pages)]


def test_unknown_ids_are_wasted_slots_not_crashes(world: World) -> None:
    res = run_live(world, _Junk(world), hours=3, sessions=30, page_size=8)
    assert res.wasted_slots > 0
    assert res.events.schema.equals(EVENT_SCHEMA)
    got = np.asarray(res.events.column("item_id"))
    idx = world.item_index(got)
    assert (idx >= 0).all() and world.visible[idx].all()


def test_repeats_bore_users(world: World) -> None:
    """Serving the same few videos again and again loses to serving them once."""

    class Same:
        def recommend(self, user_id: int, now_ms: int, n: int) -> np.ndarray:
            return world.available_item_ids(now_ms)[:n]

    a = run_live(world, Same(), hours=6, sessions=80)
    b = run_live(world, RandomPolicy(world), hours=6, sessions=80)
    assert a.label_rates["long_view"] < b.label_rates["long_view"]


def test_series_and_summary(world: World) -> None:
    res = run_live(world, RandomPolicy(world), hours=5, sessions=50)
    keys, mean = res.series(HOUR_MS)
    assert keys.size <= 5 and (np.diff(keys) > 0).all()
    assert np.isclose(
        np.average(
            mean,
            weights=np.bincount(np.searchsorted(keys, res.session_start_ms // HOUR_MS * HOUR_MS)),
        ),
        res.watch_ms_per_session,
    )
    s = res.summary()
    assert s["sessions"] == 50 and set(s["label_rates"]) >= {"long_view", "is_like"}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"hours": 0}, "hours"),
        ({"hours": 24 * 30}, "start_ms/hours"),
        ({"start_ms": 0}, "start_ms/hours"),
        ({"sessions": 0}, "sessions"),
        ({"page_size": 0}, "page_size"),
        ({"feedback_every": -1}, "feedback_every"),
        ({"max_items": 0}, "max_items"),
    ],
)
def test_bad_live_args_fail(world: World, kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        run_live(world, RandomPolicy(world), **kwargs)  # type: ignore[arg-type]
