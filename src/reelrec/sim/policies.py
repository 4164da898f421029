"""Reference policies for the live environment: lower bounds, a baseline, an upper bound.

- `RandomPolicy`: uniform over the visible catalog (the floor).
- `PopularPolicy`: recent popularity from observed feedback, decayed by a half-life, with a
  share of slots for the newest uploads (so new videos can become popular at all).
- `OraclePolicy`: ranks by the world's true expected engagement (the ceiling; it reads the
  simulator's hidden state, so it exists for tests and reports only).

Popular and oracle never show a user the same video twice (they remember what they served).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from reelrec.sim.config import HOUR_MS
from reelrec.sim.world import World


class _ServedMemory:
    """Per-user set of video indices already served, and masking helpers."""

    def __init__(self) -> None:
        self.served: dict[int, set[int]] = {}

    def mask(self, user: int, scores: np.ndarray) -> None:
        s = self.served.get(user)
        if s:
            idx = np.fromiter(s, dtype=np.int64, count=len(s))
            scores[idx[idx < scores.size]] = -np.inf

    def remember(self, user: int, idx: np.ndarray) -> None:
        self.served.setdefault(user, set()).update(idx.tolist())


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n best finite scores, best first (fewer if fewer are finite)."""
    n = min(n, int(np.isfinite(scores).sum()))
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-scores, n - 1)[:n]
    return part[np.argsort(-scores[part], kind="stable")]


class RandomPolicy:
    """Uniformly random visible videos uploaded by now (with replacement across calls)."""

    def __init__(self, world: World, *, seed: int = 0) -> None:
        self.world = world
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def recommend(self, user_id: int, now_ms: int, n: int) -> np.ndarray:
        ids = self.world.available_item_ids(now_ms)
        if ids.size == 0:
            return np.empty(0, dtype=np.int64)
        return ids[self._rng.choice(ids.size, size=min(n, ids.size), replace=False)]


class PopularPolicy:
    """Most long-viewed / liked videos recently, from the feedback it has observed.

    score(v) = sum over observed events of (long_view + is_like) * 2^(-age / half_life).
    A share `explore` of each page goes to the newest uploads the user has not been served.

    Call `observe(events)` with historical logs first to warm it up.
    """

    def __init__(self, world: World, *, half_life_hours: float = 6.0, explore: float = 0.1,
                 seed: int = 0) -> None:  # fmt: skip
        self.world = world
        self.half_life_hours = half_life_hours
        self.explore = explore
        self.seed = seed
        self.scores_ = np.zeros(world.n_items)
        self.clock_ms_ = 0
        self._rng = np.random.default_rng(seed)
        self._memory = _ServedMemory()

    def observe(self, events: pa.Table) -> None:
        if events.num_rows == 0:
            return
        ts = np.asarray(events.column("timestamp_ms"), dtype=np.int64)
        idx = self.world.item_index(np.asarray(events.column("item_id")))
        gain = np.asarray(events.column("long_view"), dtype=float) + np.asarray(
            events.column("is_like"), dtype=float
        )
        hl = self.half_life_hours * HOUR_MS
        t = max(int(ts.max()), self.clock_ms_)
        self.scores_ *= 2.0 ** (-(t - self.clock_ms_) / hl)
        ok = idx >= 0
        w = gain[ok] * 2.0 ** (-(t - ts[ok]) / hl)
        self.scores_ += np.bincount(idx[ok], weights=w, minlength=self.scores_.size)
        self.clock_ms_ = t

    def recommend(self, user_id: int, now_ms: int, n: int) -> np.ndarray:
        w = self.world
        u = int(w.user_index(np.array([user_id]))[0])
        m = int(w.n_uploaded(now_ms))
        scores = self.scores_[:m].copy()
        scores[~w.visible[:m]] = -np.inf
        self._memory.mask(u, scores)
        n_new = int(round(self.explore * n))
        fresh = scores.copy()
        fresh[: max(0, m - 500)] = -np.inf  # among the ~500 newest uploads, at random
        new = _top(np.where(np.isfinite(fresh), self._rng.random(m), -np.inf), n_new)
        scores[new] = -np.inf
        pick = np.concatenate([_top(scores, n - new.size), new])
        self._memory.remember(u, pick)
        return np.asarray(w.item_ids[pick], dtype=np.int64)


class OraclePolicy:
    """Top videos by the true expected engagement of this user now (`World.utility`).

    `dynamic=False` ranks by the static part only (no trend, no freshness): what a perfect
    model of old logs could do without learning online.
    """

    def __init__(self, world: World, *, dynamic: bool = True) -> None:
        self.world = world
        self.dynamic = dynamic
        self._memory = _ServedMemory()

    def recommend(self, user_id: int, now_ms: int, n: int) -> np.ndarray:
        w = self.world
        u = int(w.user_index(np.array([user_id]))[0])
        if u < 0:
            return np.empty(0, dtype=np.int64)
        scores = w.utility_all(u, now_ms, dynamic=self.dynamic).astype(float)
        scores[~w.visible[: scores.size]] = -np.inf
        self._memory.mask(u, scores)
        pick = _top(scores, n)
        self._memory.remember(u, pick)
        return np.asarray(w.item_ids[pick], dtype=np.int64)
