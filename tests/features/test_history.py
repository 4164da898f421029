"""Counters after a model's cut-off: held at the counts just before it (users', and on a
serving state videos' too), whatever else happens, and exactly what a model's saved state gives."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from reelrec.features.history import SESSION_GAP_MS, ServingState, causal_features

DAY = 86_400_000


def _events(seed: int = 0, n: int = 400, users: int = 8):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 6 * DAY, n))
    user = rng.integers(0, users, n)
    item = rng.integers(0, 30, n)
    labels = rng.integers(0, 2, (n, 2))
    return ts, user, item, labels[:, 0] > 0, labels


def test_counters_after_the_cutoff_hold_at_the_users_counts_before_it() -> None:
    ts, user, item, positive, labels = _events()
    after = ts >= 4 * DAY + 123
    feats, _ = causal_features(ts, user, item, positive, labels, 8, 30, 5, after_cutoff=after)
    for u in range(8):
        rows = np.flatnonzero((user == u) & after)
        if rows.size == 0:
            continue
        first = rows[0]
        before = (user == u) & (np.arange(ts.size) < first) & (ts < ts[first])
        assert (feats.user_n[rows] == before.sum()).all()
        assert (feats.user_pos[rows] == labels[before].sum(axis=0)).all()
    # Before the cut-off they are day snapshots: never more than the user's count so far.
    early = np.flatnonzero(~after)
    counts_so_far = np.array([((user == user[k]) & (ts < ts[k])).sum() for k in early])
    assert (feats.user_n[early] <= counts_so_far).all()


def test_all_rows_after_the_cutoff_continue_from_a_saved_state() -> None:
    ts, user, item, positive, labels = _events(1)
    head = ts < 4 * DAY
    _, state = causal_features(ts[head], user[head], item[head], positive[head], labels[head],
                               8, 30, 5)  # fmt: skip
    tail = ~head
    continued, _ = causal_features(ts[tail], user[tail], item[tail], positive[tail],
                                   labels[tail], 8, 30, 5, start=state, after_cutoff=True)  # fmt: skip
    one_pass, _ = causal_features(ts, user, item, positive, labels, 8, 30, 5, after_cutoff=tail)
    assert np.array_equal(continued.user_n, one_pass.user_n[tail])
    assert np.array_equal(continued.user_pos, one_pass.user_pos[tail])
    assert np.array_equal(continued.item_n, one_pass.item_n[tail])
    assert np.array_equal(continued.gap_ms, one_pass.gap_ms[tail])
    assert np.array_equal(continued.session_pos, one_pass.session_pos[tail])


def _sessions_by_brute_force(ts, user):  # type: ignore[no-untyped-def]
    """Per event: time since the user's previous event at an earlier timestamp (-1: none),
    and how many of the user's earlier events belong to the same session (pauses of at
    most SESSION_GAP_MS chain events into one session)."""
    gap = np.full(ts.size, -1, np.int64)
    pos = np.zeros(ts.size, np.int64)
    for k in range(ts.size):
        earlier = np.flatnonzero((user == user[k]) & (ts < ts[k]))
        if earlier.size == 0:
            continue
        gap[k] = ts[k] - ts[earlier[-1]]
        if gap[k] > SESSION_GAP_MS:
            continue
        times = np.r_[ts[earlier], ts[k]]
        breaks = np.flatnonzero(np.diff(times) > SESSION_GAP_MS)
        first = breaks[-1] + 1 if breaks.size else 0  # the session's first earlier event
        pos[k] = earlier.size - first
    return gap, pos


def test_session_features_follow_the_30_minute_rule() -> None:
    rng = np.random.default_rng(4)
    n = 500
    # bursts of activity: gaps of seconds to minutes, now and then hours
    steps = np.where(
        rng.random(n) < 0.1, rng.integers(1, 6, n) * 3_600_000, rng.integers(0, 900_000, n)
    )
    ts = np.cumsum(steps)
    user = rng.integers(0, 4, n)
    labels = rng.integers(0, 2, (n, 2))
    feats, _ = causal_features(ts, user, np.zeros(n, np.int64), labels[:, 0] > 0, labels, 4, 1, 3)
    gap, pos = _sessions_by_brute_force(ts, user)
    assert pos.max() > 3 and (gap > SESSION_GAP_MS).any()  # both cases occur
    np.testing.assert_array_equal(feats.gap_ms, gap)
    np.testing.assert_array_equal(feats.session_pos, pos)


def test_advancing_a_serving_state_holds_counters_and_moves_histories() -> None:
    ts, user, item, positive, labels = _events(2)
    head = ts < 4 * DAY
    _, cut = causal_features(ts[head], user[head], item[head], positive[head], labels[head],
                             8, 30, 5)  # fmt: skip
    _, later = causal_features(ts, user, item, positive, labels, 8, 30, 5)
    ids_u, ids_v = np.arange(8), np.arange(30)
    model = ServingState.from_local(cut, ids_u, ids_v)
    after = ServingState.from_local(later, ids_u, ids_v)
    assert not np.array_equal(model.item_n, after.item_n)  # the tail moved the counters

    held = model.advance(after)
    np.testing.assert_array_equal(held.item_n, model.item_n)
    np.testing.assert_array_equal(held.item_pos, model.item_pos)
    np.testing.assert_array_equal(held.user_n, model.user_n)
    np.testing.assert_array_equal(held.hist, after.hist)  # histories and sessions move on
    np.testing.assert_array_equal(held.last_ms, after.last_ms)

    live = model.advance(after, live_item_counters=True)
    np.testing.assert_array_equal(live.item_n, after.item_n)
    np.testing.assert_array_equal(live.item_pos, after.item_pos)
    np.testing.assert_array_equal(live.user_n, model.user_n)  # users' stay held either way


def test_ids_new_since_the_cutoff_start_with_zero_counters() -> None:
    ts, user, item, positive, labels = _events(3)
    head = (ts < 4 * DAY) & (item < 20) & (user < 6)  # videos 20.. and users 6.. come later
    _, cut = causal_features(ts[head], user[head], item[head], positive[head], labels[head],
                             8, 30, 5)  # fmt: skip
    _, later = causal_features(ts, user, item, positive, labels, 8, 30, 5)
    seen_u, seen_v = np.unique(user[head]), np.unique(item[head])
    model = ServingState.from_local(cut, np.arange(8), np.arange(30))
    model = replace(model, user_ids=seen_u, item_ids=seen_v, hist=model.hist[seen_u],
                    user_n=model.user_n[seen_u], user_pos=model.user_pos[seen_u],
                    item_n=model.item_n[seen_v], item_pos=model.item_pos[seen_v],
                    last_ms=model.last_ms[seen_u], session_n=model.session_n[seen_u])  # fmt: skip
    held = model.advance(ServingState.from_local(later, np.arange(8), np.arange(30)))
    new_v = np.setdiff1d(np.arange(30), seen_v)
    assert new_v.size and (held.item_n[new_v] == 0).all() and (held.item_pos[new_v] == 0).all()
    assert (held.user_n[np.setdiff1d(np.arange(8), seen_u)] == 0).all()
    np.testing.assert_array_equal(held.item_n[seen_v], model.item_n)
