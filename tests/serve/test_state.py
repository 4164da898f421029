"""Per-user live state: history rule, seen TTL, hate -> author block, LRU bound."""

from __future__ import annotations

import numpy as np

from reelrec.data.records import Event
from reelrec.serve.state import UserStateStore, is_positive


def _ev(item: int, user: int = 1, ts: int = 0, **labels: int) -> Event:
    return Event(user_id=user, item_id=item, timestamp_ms=ts, **labels)


def test_positive_rule_is_the_trainers_long_view() -> None:
    assert is_positive(_ev(1, long_view=1))
    # Other signals don't enter the history: the ranker trained on long-view histories.
    assert not is_positive(_ev(1, is_like=1, is_share=1))
    assert not is_positive(_ev(1, watch_ms=5_000, duration_ms=10_000))


def test_events_feed_history_seen_and_blocks() -> None:
    store = UserStateStore(history_len=2)
    store.record_events(
        [
            _ev(10, long_view=1),
            _ev(11, is_like=1),
            _ev(12, long_view=1),
            _ev(13, long_view=1, is_share=1),
            _ev(14, is_hate=1),
        ],
        author_of={14: 77},
        now_ms=1_000,
    )
    snap = store.snapshot(1, now_ms=1_000)
    assert snap.known
    assert snap.history.tolist() == [12, 13]  # bounded, oldest dropped
    assert sorted(snap.seen.tolist()) == [10, 11, 12, 13, 14]
    assert snap.blocked_authors.tolist() == [77]


def test_session_counts_events_until_a_long_pause() -> None:
    """The ranker's session features: the 30-minute rule of features/history.py, on the
    events' own timestamps."""
    store = UserStateStore()
    minute = 60_000
    times = [0, 5 * minute, 12 * minute, 3 * 60 * minute, 3 * 60 * minute + 1]
    store.record_events([_ev(i, ts=t) for i, t in enumerate(times)], author_of={}, now_ms=0)
    snap = store.snapshot(1, now_ms=0)
    assert (snap.last_event_ms, snap.session_events) == (times[-1], 2)  # the pause reset it
    store.record_events([_ev(9, ts=times[-1] - 2 * minute)], author_of={}, now_ms=0)  # late
    snap = store.snapshot(1, now_ms=0)
    assert (snap.last_event_ms, snap.session_events) == (times[-1], 3)


def test_unknown_user_snapshot_is_empty() -> None:
    snap = UserStateStore().snapshot(5, now_ms=0)
    assert not snap.known and snap.history.size == snap.seen.size == snap.blocked_authors.size == 0


def test_seen_expires_after_ttl() -> None:
    store = UserStateStore(seen_ttl_s=10)
    store.record_served(1, np.array([1, 2]), now_ms=0)
    store.record_served(1, np.array([3]), now_ms=5_000)
    assert sorted(store.snapshot(1, now_ms=10_000).seen.tolist()) == [1, 2, 3]
    assert store.snapshot(1, now_ms=12_000).seen.tolist() == [3]


def test_users_are_bounded_lru() -> None:
    store = UserStateStore(max_users=2)
    store.block_author(1, 5)
    store.block_author(2, 5)
    store.record_served(1, np.array([9]), now_ms=0)  # 1 becomes most recent
    store.block_author(3, 5)  # evicts 2
    assert len(store) == 2
    assert store.snapshot(2, 0).known is False and store.snapshot(1, 0).known
