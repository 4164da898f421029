"""Face 1 of the simulator: logs in the canonical format, served by a built-in logging policy.

The logging policy mixes popular (yesterday's long views, decayed), uniformly random and
mildly personalised (a topic drawn from the user's true interests, then a random video of
that topic) slots, so the logs carry both signal and exploration.

Simulation is vectorised over all sessions of a day, 16 feed positions at a time: sessions
that ended drop out of the next block, so work follows the number of events.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from reelrec.data.dataset import Interactions
from reelrec.data.records import LABELS
from reelrec.sim.config import DAY_MS, SimConfig
from reelrec.sim.world import (
    GAP_MS,
    EventColumns,
    Noise,
    World,
    diurnal_times,
    events_table,
    respond,
)
from reelrec.store.atomic import atomic_write_json, atomic_write_parquet

BLOCK = 16  # feed positions simulated per vectorised step
POP_DECAY = 0.5  # the logging policy's popularity halves every day
POP_FLOOR = 0.1  # weight of a video with no long views yet
_TOPIC_SHIFT = np.int64(1) << np.int64(43)  # topic * 2^43 + upload time offset: one sort key


@dataclass
class _TopicIndex:
    """Videos grouped by topic, each group in upload order, for 'random video of topic t
    uploaded by time t' lookups with one searchsorted."""

    order: np.ndarray  # (V,) video indices sorted by (topic, upload_ms)
    keys: np.ndarray  # (V,) topic * 2^43 + (upload_ms - t0), sorted
    start: np.ndarray  # (T,) first position of each topic in `order`
    t0: int

    @classmethod
    def build(cls, world: World) -> _TopicIndex:
        t0 = int(world.upload_ms.min())
        order = np.lexsort((world.upload_ms, world.topic))
        keys = world.topic[order] * _TOPIC_SHIFT + (world.upload_ms[order] - t0)
        start = np.searchsorted(world.topic[order], np.arange(world.cfg.topics), side="left")
        return cls(order=order, keys=keys, start=start, t0=t0)


def simulate_logs(cfg: SimConfig, *, world: World | None = None) -> Interactions:
    """Simulate `cfg.days` days of feed traffic served by the logging policy.

    Returns events (EVENT_SCHEMA, sorted by timestamp_ms), the catalog of videos uploaded
    before the end of the logs (ITEM_SCHEMA + topic) and the users (USER_SCHEMA +
    age_bucket, activity_bucket, primary_topic). Pass `world` to reuse an already built
    `World(cfg)`.
    """
    world = world if world is not None else World(cfg)
    if world.cfg != cfg:
        raise ValueError("simulate_logs: `world` was built from a different SimConfig")
    tix = _TopicIndex.build(world)
    r0 = world.rng_stream("logs", "popularity")
    n0 = int(world.n_uploaded(cfg.start_ms))
    pop = np.full(world.n_items, POP_FLOOR)
    pop[:n0] += np.exp(0.8 * world.quality[:n0] + r0.normal(0.0, 0.5, n0))  # pre-history
    parts: list[EventColumns] = []
    for d in range(cfg.days):
        log = _simulate_day(world, d, pop, tix)
        parts.append(log)
        lv = log.v[log.labels["long_view"] == 1]
        pop = POP_DECAY * pop + np.bincount(lv, minlength=world.n_items) + POP_FLOOR
    log = EventColumns.concat(parts)
    order = np.argsort(log.ts, kind="stable")
    events = events_table(
        world.user_ids[log.u[order]],
        world.item_ids[log.v[order]],
        log.ts[order],
        log.watch[order],
        world.duration_ms[log.v[order]],
        {k: a[order] for k, a in log.labels.items()},
    )
    return Interactions(
        events=events,
        items=world.catalog(cfg.end_ms - 1),
        users=world.users_table(),
        labels=LABELS,
        source="sim",
        rows_in=events.num_rows,
    )


def write_logs(cfg: SimConfig, out_dir: Path, *, world: World | None = None) -> Interactions:
    """Simulate and write `events.parquet`, `items.parquet`, `users.parquet` (the canonical
    layout) and `sim_config.json` (to rebuild the same world) into `out_dir`, atomically."""
    data = simulate_logs(cfg, world=world)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(data.items, out / "items.parquet")
    atomic_write_parquet(data.users, out / "users.parquet")
    atomic_write_json(cfg.to_dict(), out / "sim_config.json")
    atomic_write_parquet(data.events, out / "events.parquet")  # last: its presence = complete
    return data


def _simulate_day(world: World, day: int, pop: np.ndarray, tix: _TopicIndex) -> EventColumns:
    cfg = world.cfg
    r = world.rng_stream("logs", day)
    n_sess = r.poisson(cfg.sessions_per_day * world.activity)
    users = np.repeat(np.arange(world.n_users), n_sess)
    t_cur = diurnal_times(r, cfg.start_ms + day * DAY_MS, users.size)
    n_avail = world.n_uploaded(t_cur)
    cum_pop = np.cumsum(pop)
    cum_int = np.cumsum(world.interest[day], axis=1)  # (U, T)
    act = np.arange(users.size)
    out: list[EventColumns] = []
    pos = 0
    while act.size and pos < cfg.max_session_items:
        b = min(BLOCK, cfg.max_session_items - pos)
        sa = act.size
        uu = np.repeat(users[act], b)
        tt = np.repeat(t_cur[act], b)
        v, ok = _logging_policy(r, world, uu, tt, np.repeat(n_avail[act], b), cum_pop, cum_int, tix)
        position = np.tile(np.arange(pos, pos + b), sa)
        resp = respond(
            world.utility(uu, v, tt), world.duration_ms[v], position, Noise.draw(r, v.size)
        )
        leave = resp.leave.reshape(sa, b)
        ended = leave.any(1)
        first = np.where(ended, leave.argmax(1), b)
        keep = (np.arange(b)[None, :] <= first[:, None]).ravel() & ok
        step = (resp.watch_ms + GAP_MS).reshape(sa, b)
        elapsed = np.cumsum(step, axis=1)
        # event time = start of play, as a log records an impression (and as features assume:
        # an end-of-play time would put the event's own watch time in the gap since the last)
        ts = (t_cur[act][:, None] + elapsed - step).ravel()
        out.append(
            EventColumns(uu[keep], v[keep], ts[keep], resp.watch_ms[keep],
                 {k: a[keep] for k, a in resp.labels.items()})
        )  # fmt: skip
        t_cur[act] += elapsed[:, -1]
        act = act[~ended]
        pos += b
    return EventColumns.concat(out)


def _logging_policy(
    r: np.random.Generator,
    world: World,
    uu: np.ndarray,
    tt: np.ndarray,
    n_avail: np.ndarray,
    cum_pop: np.ndarray,
    cum_int: np.ndarray,
    tix: _TopicIndex,
) -> tuple[np.ndarray, np.ndarray]:
    """Pick one video per slot (N,); returns (video indices, slot is servable)."""
    n = uu.size
    mix = np.asarray(world.cfg.log_mix, dtype=float)
    cmix = np.cumsum(mix / mix.sum())
    src = np.searchsorted(cmix, r.random(n), side="right")  # 0 popular, 1 random, 2 personal
    rand = (r.random(n) * n_avail).astype(np.int64)
    pop = np.searchsorted(cum_pop, r.random(n) * cum_pop[n_avail - 1], side="right")
    pop = np.minimum(pop, n_avail - 1)
    topic = (cum_int[uu] < r.random(n)[:, None]).sum(1).clip(0, world.cfg.topics - 1)
    hi = np.searchsorted(tix.keys, topic * _TOPIC_SHIFT + (tt - tix.t0), side="right")
    lo = tix.start[topic]
    pick = lo + (r.random(n) * (hi - lo)).astype(np.int64)
    pers = np.where(hi > lo, tix.order[np.minimum(pick, tix.order.size - 1)], rand)
    v = np.where(src == 0, pop, np.where(src == 1, rand, pers))
    # The logging system never serves hidden videos: redraw those slots at random.
    bad = ~world.visible[v]
    for _ in range(30):
        if not bad.any():
            break
        v[bad] = (r.random(int(bad.sum())) * n_avail[bad]).astype(np.int64)
        bad = ~world.visible[v]
    return v, ~bad


def label_rates(events: pa.Table) -> dict[str, float]:
    """Mean of each label over the events (empty table -> 0.0)."""
    n = events.num_rows
    return {k: (float(np.asarray(events.column(k)).mean()) if n else 0.0) for k in LABELS}
