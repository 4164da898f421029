"""Face 2 of the simulator: a live environment that a policy serves feeds to.

`run_live` replays a fixed schedule of sessions (who opens the app, when) and asks the policy
for one page of items at a time; the simulated user watches the page item by item and may
leave after any item. All randomness of a session (its user, start time and the per-slot
noise of the response model) is drawn from the seed and the session's number before any
item is known, so policies run on the same world face the same users in the same moods
(common random numbers): differences in watch time come from the feeds, not from luck.

Items a policy returns that do not exist, are hidden or are not uploaded yet are wasted
slots: the user swipes past them (no event), and may leave as after a bad video.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from reelrec.data.records import LABELS
from reelrec.errors import ConfigError
from reelrec.sim.config import HOUR_MS
from reelrec.sim.logs import label_rates
from reelrec.sim.world import (
    DIURNAL,
    GAP_MS,
    REPEAT_PENALTY,
    EventColumns,
    Noise,
    World,
    events_table,
    respond,
    wasted_leave,
)


class Policy(Protocol):
    """Anything that serves feeds: returns up to n item ids (int64), best first."""

    def recommend(self, user_id: int, now_ms: int, n: int) -> np.ndarray: ...


@runtime_checkable
class OnlinePolicy(Protocol):
    """A policy that also learns from feedback: `observe` gets EVENT_SCHEMA tables, in
    timestamp order, with the events that happened since the previous call."""

    def recommend(self, user_id: int, now_ms: int, n: int) -> np.ndarray: ...

    def observe(self, events: pa.Table) -> None: ...


@dataclass
class LiveResult:
    """What happened when one policy served the live sessions.

    Per-session arrays have shape (S,), in session order (= start time order).
    """

    sessions: int
    watch_ms_per_session: float  # mean total watch time per session
    watch_ms_se: float  # standard error of that mean
    items_per_session: float  # items actually watched (events) per session
    wasted_slots: int  # slots with unknown / hidden / not-yet-uploaded ids
    label_rates: dict[str, float]  # label -> mean over events
    session_user_id: np.ndarray
    session_start_ms: np.ndarray
    session_watch_ms: np.ndarray
    session_items: np.ndarray
    events: pa.Table = field(repr=False)  # EVENT_SCHEMA, timestamp order

    def series(self, bucket_ms: int = HOUR_MS) -> tuple[np.ndarray, np.ndarray]:
        """Mean watch time per session by start-time bucket: (bucket start ms, mean ms)."""
        b = (self.session_start_ms // bucket_ms) * bucket_ms
        keys, inv = np.unique(b, return_inverse=True)
        total = np.bincount(inv, weights=self.session_watch_ms.astype(float))
        return keys, total / np.bincount(inv)

    def paired_difference(self, other: LiveResult) -> tuple[float, float]:
        """Mean and standard error of (this - other) watch ms per session, session by session.

        Runs on the same world and schedule face the same users in the same moods (common
        random numbers), so the per-session differences cancel most of the between-session
        spread that each policy's own standard error carries. The error is over sessions
        within this one run: policies with shared state (trending counts, an online model)
        follow one of many trajectories, and a rerun that changes any float (a thread count)
        can move the difference by more than this error. Compare over several schedules.
        """
        same = np.array_equal(self.session_user_id, other.session_user_id) and np.array_equal(
            self.session_start_ms, other.session_start_ms
        )
        if not same:
            raise ConfigError("paired difference: the two runs served different sessions")
        d = (self.session_watch_ms - other.session_watch_ms).astype(float)
        se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else 0.0
        return float(d.mean()), se

    def summary(self) -> dict[str, object]:
        """JSON-ready figures (no arrays)."""
        return {
            "sessions": self.sessions,
            "watch_ms_per_session": self.watch_ms_per_session,
            "watch_ms_se": self.watch_ms_se,
            "items_per_session": self.items_per_session,
            "wasted_slots": self.wasted_slots,
            "label_rates": self.label_rates,
        }


def live_schedule(
    world: World, start_ms: int, hours: float, sessions: int
) -> tuple[np.ndarray, np.ndarray]:
    """The sessions of a live run: (user indices (S,), start times (S,)), sorted by time.

    Users come by activity (heavy-tailed), times follow the daily profile; a pure function
    of (seed, start_ms, hours, sessions).
    """
    r = world.rng_stream("live-schedule", start_ms, int(hours * 1000), sessions)
    end_ms = start_ms + int(hours * HOUR_MS)
    slot_start = np.arange(start_ms, end_ms, HOUR_MS, dtype=np.int64)
    slot_len = np.minimum(HOUR_MS, end_ms - slot_start)
    w = DIURNAL[(slot_start // HOUR_MS) % 24] * slot_len
    slot = r.choice(slot_start.size, size=sessions, p=w / w.sum())
    t = slot_start[slot] + (r.random(sessions) * slot_len[slot]).astype(np.int64)
    users = r.choice(world.n_users, size=sessions, p=world.activity / world.activity.sum())
    order = np.argsort(t, kind="stable")
    return users[order], t[order]


def run_live(
    world: World,
    policy: Policy,
    *,
    start_ms: int | None = None,
    hours: float = 24.0,
    sessions: int = 1000,
    page_size: int = 10,
    feedback_every: int = 50,
    max_items: int | None = None,
) -> LiveResult:
    """Let `policy` serve `sessions` live sessions in [start_ms, start_ms + hours).

    Args:
        world: the simulated world (not modified).
        policy: a `Policy`; if it has `observe`, it gets the feedback every `feedback_every`
            sessions (events up to the next session's start).
        start_ms: start of the live window; default: the end of the logged days.
        hours: length of the window; it must end within the world's horizon.
        sessions: number of sessions to run.
        page_size: items requested per `recommend` call.
        max_items: cap on slots per session; default `cfg.max_session_items`.
    """
    cfg = world.cfg
    start = cfg.end_ms if start_ms is None else int(start_ms)
    _check_live_args(world, start, hours, sessions, page_size, feedback_every, max_items)
    cap = cfg.max_session_items if max_items is None else max_items
    su, st = live_schedule(world, start, hours, sessions)
    observe = policy.observe if isinstance(policy, OnlinePolicy) else None
    run = _LiveRun(world, policy, cap, page_size)
    for i in range(sessions):
        run.session(i, int(su[i]), int(st[i]), start)
        if observe is not None and ((i + 1) % feedback_every == 0 or i + 1 == sessions):
            upto = int(st[i + 1]) if i + 1 < sessions else np.iinfo(np.int64).max
            run.deliver(observe, upto)
    events = run.events()
    watch = np.asarray(run.s_watch, dtype=np.int64)
    return LiveResult(
        sessions=sessions,
        watch_ms_per_session=float(watch.mean()),
        watch_ms_se=float(watch.std(ddof=1) / math.sqrt(sessions)) if sessions > 1 else 0.0,
        items_per_session=float(np.mean(run.s_items)),
        wasted_slots=run.wasted,
        label_rates=label_rates(events),
        session_user_id=world.user_ids[su],
        session_start_ms=st,
        session_watch_ms=watch,
        session_items=np.asarray(run.s_items, dtype=np.int64),
        events=events,
    )


class _LiveRun:
    """State of one `run_live` call: what each user has seen, the event columns so far."""

    def __init__(self, world: World, policy: Policy, cap: int, page_size: int) -> None:
        self.world, self.policy, self.cap, self.page_size = world, policy, cap, page_size
        self.seen: dict[int, set[int]] = {}
        self.chunks: list[EventColumns] = []  # every event, for the result
        self.pending: list[EventColumns] = []  # events the policy has not observed yet
        self.s_watch: list[int] = []
        self.s_items: list[int] = []
        self.wasted = 0

    def session(self, i: int, u: int, now: int, run_start: int) -> None:
        w = self.world
        noise = Noise.draw(w.rng_stream("live", run_start, i), self.cap)
        seen = self.seen.setdefault(u, set())
        pos, watch_total, items = 0, 0, 0
        while pos < self.cap:
            b = min(self.page_size, self.cap - pos)
            idx = self._page(u, now, b)
            valid = idx >= 0
            self.wasted += int((~valid).sum())
            positions = np.arange(pos, pos + b)
            nz = noise.take(slice(pos, pos + b))
            leave = wasted_leave(positions, nz)
            watch = np.zeros(b, dtype=np.int64)
            resp = None
            if valid.any():
                v = idx[valid]
                util = w.utility(np.full(v.size, u), v, now)
                util -= REPEAT_PENALTY * _repeats(v, seen)
                resp = respond(util, w.duration_ms[v], positions[valid], nz.take(valid))
                leave[valid] = resp.leave
                watch[valid] = resp.watch_ms
            cut = int(leave.argmax()) + 1 if leave.any() else b
            elapsed = np.cumsum(watch + GAP_MS)
            if resp is not None:
                keep = np.flatnonzero(valid[:cut])  # page slots watched before leaving
                sub = np.searchsorted(np.flatnonzero(valid), keep)  # their rows in resp
                chunk = EventColumns(
                    np.full(keep.size, u, dtype=np.int64),
                    idx[keep],
                    now + elapsed[keep] - watch[keep] - GAP_MS,  # event time = start of play
                    watch[keep],
                    {k: resp.labels[k][sub] for k in LABELS},
                )
                self.chunks.append(chunk)
                self.pending.append(chunk)
                seen.update(idx[keep].tolist())
                items += keep.size
                watch_total += int(watch[keep].sum())
            now += int(elapsed[cut - 1])
            pos += cut
            if cut < b or leave[b - 1]:
                break
        self.s_watch.append(watch_total)
        self.s_items.append(items)

    def _page(self, u: int, now: int, b: int) -> np.ndarray:
        """(b,) video indices of the policy's page; -1 for wasted slots."""
        w = self.world
        raw = self.policy.recommend(int(w.user_ids[u]), now, b)
        ids = np.asarray(raw).reshape(-1)[:b]
        if ids.dtype.kind not in "iu":  # e.g. floats or objects: nothing usable
            ids = np.empty(0, dtype=np.int64)
        idx = np.full(b, -1, dtype=np.int64)
        got = w.item_index(ids.astype(np.int64, copy=False))
        ok = got >= 0
        ok[ok] &= w.visible[got[ok]] & (w.upload_ms[got[ok]] <= now)
        idx[: ids.size] = np.where(ok, got, -1)
        return idx

    def deliver(self, observe: Callable[[pa.Table], None], upto_ms: int) -> None:
        """Give the policy the events with timestamp <= `upto_ms` it has not had yet."""
        if not self.pending:
            return
        log = EventColumns.concat(self.pending)
        now = log.ts <= upto_ms
        self.pending = [log.take(~now)] if (~now).any() else []
        if now.any():
            observe(self._table(log.take(now)))

    def events(self) -> pa.Table:
        return self._table(EventColumns.concat(self.chunks))

    def _table(self, log: EventColumns) -> pa.Table:
        """EVENT_SCHEMA table of `log`, sorted by timestamp."""
        w, order = self.world, np.argsort(log.ts, kind="stable")
        v = log.v[order]
        return events_table(
            w.user_ids[log.u[order]],
            w.item_ids[v],
            log.ts[order],
            log.watch[order],
            w.duration_ms[v],
            {k: a[order] for k, a in log.labels.items()},
        )


def _repeats(v: np.ndarray, seen: set[int]) -> np.ndarray:
    """(N,) float32: 1 where video v was seen before (earlier sessions or earlier on the
    page), else 0."""
    out = np.zeros(v.size, dtype=np.float32)
    page: set[int] = set()
    for j, x in enumerate(v.tolist()):
        if x in seen or x in page:
            out[j] = 1.0
        page.add(x)
    return out


def _check_live_args(
    world: World,
    start: int,
    hours: float,
    sessions: int,
    page_size: int,
    feedback_every: int,
    max_items: int | None,
) -> None:
    cfg = world.cfg
    if not isinstance(hours, int | float) or not math.isfinite(hours) or hours <= 0:
        raise ConfigError(f"hours: must be a positive number, got {hours!r}")
    if start < cfg.start_ms or start + hours * HOUR_MS > cfg.horizon_end_ms:
        raise ConfigError(
            f"start_ms/hours: the live window [{start}, +{hours} h) must lie within the world's "
            f"horizon [{cfg.start_ms}, {cfg.horizon_end_ms}); raise SimConfig.live_days"
        )
    for name, val in (("sessions", sessions), ("page_size", page_size),
                      ("feedback_every", feedback_every)):  # fmt: skip
        if not isinstance(val, int) or isinstance(val, bool) or val < 1:
            raise ConfigError(f"{name}: must be an integer >= 1, got {val!r}")
    if max_items is not None and (not isinstance(max_items, int) or max_items < 1):
        raise ConfigError(f"max_items: must be an integer >= 1, got {max_items!r}")
