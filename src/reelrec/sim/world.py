"""The simulated short-video world: users, creators, videos, trends and the response model.

Everything random is drawn here once, from named numpy streams derived from the seed, so a
`World` is a pure function of its `SimConfig`. Logs (`simulate_logs`) and the live
environment (`run_live`) both read this state; neither changes it.

Model (U users, V videos over the whole horizon, T topics, K latent dims, H days):
    interest[d, u]   (H, U, T) topic interests, rows sum to 1, drift a little each day
    z_user (U, K), z_item (V, K)   hidden tastes (item side partly from sub-tag and author)
    quality (V,)     per video, around its author's quality
    trend (T, 24H)   per topic and hour, 0 most of the time, bumps of 0.8-2 logits when trending
    utility(u, v, t) = 0.6 log(0.05 + T * interest . topic_mix)  + 0.5 z_user . z_item
                       + 0.6 quality + trend[topic, hour] + 1.0 exp(-age / 12 h) + bias_user
The response model (`respond`) turns utility plus per-event noise into click, watch time,
long view, like, follow, comment, share, hate, and whether the user leaves the session.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa

from reelrec.data.records import EVENT_SCHEMA, ITEM_SCHEMA, LABELS
from reelrec.sim.config import DAY_MS, HOUR_MS, SimConfig

# Raw ids are offset so that item ids need 64 bits and no id space overlaps another: code
# downstream must treat ids as opaque int64 keys, as it would with real logs.
USER_ID_BASE = 1_000_000
ITEM_ID_BASE = 5_000_000_000
AUTHOR_ID_BASE = 7_000_000
MUSIC_ID_BASE = 9_000_000
SUBTAG_BASE = 1000  # tags: topic t -> 1 + t; sub-tag s of topic t -> 1000 + t * S + s
AGE_BUCKETS = 7
ACTIVITY_BUCKETS = 5
INITIAL_CATALOG_DAYS = 30
FEED_TAB = 1

# Share of sessions starting in each hour of the day: quiet night, lunch and evening peaks.
DIURNAL = np.array(
    [3, 2, 1.5, 1, 1, 1.5, 3, 5, 6, 5, 5, 6, 8, 7, 5, 5, 6, 7, 9, 11, 12, 12, 10, 6], dtype=float
)
DIURNAL /= DIURNAL.sum()

# Utility weights (logit scale).
B_TOPIC, B_LATENT, B_QUALITY, B_FRESH = 0.6, 0.5, 0.6, 1.0
FRESH_TAU_MS = 12 * HOUR_MS
REPEAT_PENALTY = 3.0  # seeing the same video again in the live environment is boring
# Response model constants (logit offsets), tuned for KuaiRand-like rates under the logging
# policy: click ~47%, long view ~32%, like ~3%, follow ~0.4%, comment ~0.6%, share ~0.3%,
# hate ~0.4% of impressions, ~19 items per session.
C_CLICK, C_WATCH, C_LIKE, C_FOLLOW, C_COMMENT, C_SHARE, C_HATE = (
    -0.5, -0.7, -4.3, -6.5, -6.1, -6.8, -6.2,
)  # fmt: skip
C_LEAVE, G_LEAVE, LEAVE_FLOOR, LEAVE_PER_POS = -3.5, 0.7, 0.01, 0.01
MOOD_SD, WATCH_SD = 0.8, 0.7
LONG_VIEW_MS = 18_000  # long view: watched min(duration, 18 s) or more
SWIPE_MIN_MS, SWIPE_MAX_MS, GAP_MS = 300, 2000, 400


def rng_for(seed: int, *stream: int | str) -> np.random.Generator:
    """An independent numpy Generator for a named stream (stable across Python runs)."""
    key = [seed] + [zlib.crc32(s.encode()) if isinstance(s, str) else int(s) for s in stream]
    return np.random.default_rng(key)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def diurnal_times(rng: np.random.Generator, day_start_ms: np.ndarray | int, n: int) -> np.ndarray:
    """(n,) int64 times within the day(s) starting at `day_start_ms`, by the diurnal profile."""
    hour = rng.choice(24, size=n, p=DIURNAL)
    within = (rng.random(n) * HOUR_MS).astype(np.int64)
    return np.asarray(day_start_ms, dtype=np.int64) + hour * HOUR_MS + within


@dataclass
class Noise:
    """Per-slot random draws for the response model, (N,) each; drawn before the item is
    known, so different policies shown the same session face the same noise."""

    mood: np.ndarray  # standard normal
    watch: np.ndarray  # standard normal
    uni: np.ndarray  # (N, 8) uniform: click, like, follow, comment, share, hate, leave, swipe

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int) -> Noise:
        return cls(
            mood=rng.standard_normal(n, dtype=np.float32),
            watch=rng.standard_normal(n, dtype=np.float32),
            uni=rng.random((n, 8), dtype=np.float32),
        )

    def take(self, sl: slice | np.ndarray) -> Noise:
        return Noise(self.mood[sl], self.watch[sl], self.uni[sl])


@dataclass
class Response:
    """What users did with N shown items; arrays of shape (N,)."""

    watch_ms: np.ndarray  # int64
    labels: dict[str, np.ndarray]  # label name -> int8 0/1, names as in LABELS
    leave: np.ndarray  # bool: the user ends the session after this item


@dataclass
class EventColumns:
    """Event columns by world index, (N,) each, before they become an EVENT_SCHEMA table."""

    u: np.ndarray  # user indices
    v: np.ndarray  # video indices
    ts: np.ndarray  # event time (start of play: when the video was shown), ms
    watch: np.ndarray  # watch_ms
    labels: dict[str, np.ndarray]  # int8 per label

    def take(self, mask: np.ndarray) -> EventColumns:
        return EventColumns(
            self.u[mask], self.v[mask], self.ts[mask], self.watch[mask],
            {k: a[mask] for k, a in self.labels.items()},
        )  # fmt: skip

    @classmethod
    def concat(cls, parts: list[EventColumns]) -> EventColumns:
        if not parts:
            e = np.empty(0, dtype=np.int64)
            return cls(e, e, e, e, {k: np.empty(0, dtype=np.int8) for k in LABELS})
        return cls(
            np.concatenate([p.u for p in parts]),
            np.concatenate([p.v for p in parts]),
            np.concatenate([p.ts for p in parts]),
            np.concatenate([p.watch for p in parts]),
            {k: np.concatenate([p.labels[k] for p in parts]) for k in LABELS},
        )


def respond(
    util: np.ndarray, duration_ms: np.ndarray, position: np.ndarray, noise: Noise
) -> Response:
    """The response model, vectorised over N impressions.

    Args:
        util: (N,) float utility of each (user, video, time) from `World.utility`.
        duration_ms: (N,) int64 video durations.
        position: (N,) int index of the item in its session (fatigue grows with it).
        noise: per-impression draws.
    """
    e = util.astype(np.float32) + MOOD_SD * noise.mood  # this impression's engagement
    u = noise.uni
    dur = duration_ms.astype(np.float32)
    click = u[:, 0] < sigmoid(e + C_CLICK)
    # Longer videos are watched to a smaller fraction; short ones get replayed (ratio > 1).
    ratio = 1.6 * sigmoid(e + C_WATCH - 0.6 * np.log(dur / 20_000.0) + WATCH_SD * noise.watch)
    swipe = np.minimum(SWIPE_MIN_MS + u[:, 7] * (SWIPE_MAX_MS - SWIPE_MIN_MS), dur)
    watch_ms = np.where(click, ratio * dur, swipe).astype(np.int64)
    long_view = click & (watch_ms >= np.minimum(duration_ms, LONG_VIEW_MS))
    like = click & (u[:, 1] < sigmoid(e + C_LIKE))
    hate = ~like & (u[:, 5] < sigmoid(-e + C_HATE))
    labels = {
        "is_click": click,
        "long_view": long_view,
        "is_like": like,
        "is_follow": click & (u[:, 2] < sigmoid(e + C_FOLLOW)),
        "is_comment": click & (u[:, 3] < sigmoid(e + C_COMMENT)),
        "is_share": click & (u[:, 4] < sigmoid(e + C_SHARE)),
        "is_hate": hate,
    }
    # A satisfied user stays; a bored, tired or annoyed one leaves.
    logit = C_LEAVE - G_LEAVE * e + LEAVE_PER_POS * position + 2.0 * hate
    p_leave = LEAVE_FLOOR + (1.0 - LEAVE_FLOOR) * sigmoid(logit)
    return Response(
        watch_ms=watch_ms,
        labels={k: v.astype(np.int8) for k, v in labels.items()},
        leave=u[:, 6] < p_leave,
    )


def wasted_leave(position: np.ndarray, noise: Noise) -> np.ndarray:
    """(N,) bool: does the user leave after a wasted slot (unknown or unavailable item)?"""
    e = np.float32(-2.0) + MOOD_SD * noise.mood
    p = LEAVE_FLOOR + (1.0 - LEAVE_FLOOR) * sigmoid(
        C_LEAVE - G_LEAVE * e + LEAVE_PER_POS * position
    )
    return noise.uni[:, 6] < p


class World:
    """All state of one simulated world; a pure function of `cfg`.

    Indices (u, v) are positions 0..U-1 / 0..V-1; ids are `USER_ID_BASE + u` and
    `ITEM_ID_BASE + v`. Videos are numbered in upload order, so the catalog at time t is the
    prefix `v < n_uploaded(t)`.

    Example::

        world = World(SimConfig(users=500, videos=1000, days=2))
        ids = world.available_item_ids(world.cfg.end_ms)
        u = world.user_index(np.array([world.user_ids[0]]))
        util = world.utility(np.repeat(u, len(ids)), world.item_index(ids), world.cfg.end_ms)
    """

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self._make_topics()
        self._make_users()
        self._make_trends()
        self._make_creators()
        self._make_videos()

    # ---- generation -------------------------------------------------------------------
    def rng_stream(self, *stream: int | str) -> np.random.Generator:
        return rng_for(self.cfg.seed, *stream)

    def _make_topics(self) -> None:
        c, r = self.cfg, self.rng_stream("topics")
        self.topic_pop = r.dirichlet(np.full(c.topics, 2.0))  # (T,) global topic shares
        # Each age bucket leans towards its own topics, so profiles carry signal.
        self.age_topic = r.dirichlet(self.topic_pop * c.topics * 2.0, size=AGE_BUCKETS)  # (A, T)
        self.subtag_z = r.standard_normal((c.topics * c.subtags_per_topic, c.latent_dim))
        self.topic_dur = r.normal(0.0, 0.4, c.topics)  # log-duration offset per topic

    def _make_users(self) -> None:
        c, r = self.cfg, self.rng_stream("users")
        n, t = c.users, c.topics
        self.age = r.choice(AGE_BUCKETS, size=n, p=[0.05, 0.2, 0.25, 0.2, 0.15, 0.1, 0.05])
        alpha = 0.25 * t * self.age_topic[self.age]  # (U, T), sum 0.25 T: a few topics each
        act = r.lognormal(0.0, c.activity_sigma, n)
        self.activity = act / act.mean()  # (U,) mean 1, heavy right tail
        self.user_bias = r.normal(0.0, 0.4, n).astype(np.float32)
        self.z_user = r.standard_normal((n, c.latent_dim)).astype(np.float32)
        interest = np.empty((c.horizon_days, n, t), dtype=np.float32)
        cur = _dirichlet_rows(r, alpha)
        for d in range(c.horizon_days):
            interest[d] = cur
            fresh = _dirichlet_rows(r, alpha)
            cur = (1.0 - c.interest_drift) * cur + c.interest_drift * fresh
        self.interest = interest
        self.user_ids = USER_ID_BASE + np.arange(n, dtype=np.int64)

    def _make_trends(self) -> None:
        """trend (T, 24 H) float32: topics trend (rise in ~1/3 of the width, fade slower)."""
        c, r = self.cfg, self.rng_stream("trends")
        hours = c.horizon_days * 24
        trend = np.zeros((c.topics, hours), dtype=np.float32)
        h = np.arange(hours, dtype=np.float64)
        for d in range(c.horizon_days):
            for _ in range(r.poisson(c.trends_per_day)):
                topic = r.choice(c.topics, p=self.topic_pop)
                peak = d * 24 + r.uniform(0, 24)
                width, amp = r.uniform(3.0, 10.0), r.uniform(0.8, 2.0)
                w = np.where(h < peak, width / 3.0, width)
                trend[topic] += amp * np.exp(-(((h - peak) / w) ** 2))
        self.trend = trend

    def _make_creators(self) -> None:
        c, r = self.cfg, self.rng_stream("creators")
        n = c.n_creators
        self.author_topic = r.choice(c.topics, size=(n, 2), p=self.topic_pop)
        self.author_quality = r.normal(0.0, 0.5, n)
        rate = r.lognormal(0.0, 1.2, n)  # a few prolific creators
        self.author_rate = rate / rate.sum()
        self.author_z = r.standard_normal((n, c.latent_dim))

    def _make_videos(self) -> None:
        c, r = self.cfg, self.rng_stream("videos")
        up0 = c.start_ms - (r.random(c.videos) * INITIAL_CATALOG_DAYS * DAY_MS).astype(np.int64)
        day_starts = c.start_ms + DAY_MS * np.repeat(
            np.arange(c.horizon_days, dtype=np.int64), c.uploads_per_day
        )
        up1 = diurnal_times(r, day_starts, day_starts.size)
        upload = np.sort(np.concatenate([up0, up1]))
        v = upload.size
        author = r.choice(c.n_creators, size=v, p=self.author_rate)
        # Mostly the creator's own topic; sometimes a jump on whatever trends at upload time.
        hour = np.clip((upload - c.start_ms) // HOUR_MS, 0, self.trend.shape[1] - 1)
        w = self.topic_pop[:, None] * np.exp(2.0 * self.trend[:, hour])  # (T, V)
        cum = np.cumsum(w / w.sum(0), axis=0)
        jump = (cum < r.random(v)[None, :]).sum(0).clip(0, c.topics - 1)
        own = r.random(v) < 0.75
        topic = np.where(own, self.author_topic[author, 0], jump)
        topic2 = np.where(
            r.random(v) < 0.5, self.author_topic[author, 1], r.integers(0, c.topics, v)
        )
        s = c.subtags_per_topic
        sub1 = topic * s + r.integers(0, s, v)
        sub2 = np.where(r.random(v) < 0.5, topic * s + r.integers(0, s, v), -1)
        z = (
            0.6 * self.subtag_z[sub1]
            + 0.5 * self.author_z[author]
            + 0.6 * r.standard_normal((v, c.latent_dim))
        )
        log_dur = np.log(20.0) + self.topic_dur[topic] + 0.9 * r.standard_normal(v)
        music = np.where(
            r.random(v) < 0.8, MUSIC_ID_BASE + (r.zipf(1.3, v) - 1) % c.music, 0
        ).astype(np.int64)
        self.upload_ms = upload.astype(np.int64)
        self.author = author.astype(np.int64)
        self.topic = topic.astype(np.int64)
        self.topic2 = topic2.astype(np.int64)
        self.sub1, self.sub2 = sub1.astype(np.int64), sub2.astype(np.int64)
        self.z_item = (z / np.sqrt(c.latent_dim)).astype(np.float32)  # z_user . z_item ~ N(0, 1)
        self.quality = (self.author_quality[author] + r.normal(0.0, 0.6, v)).astype(np.float32)
        self.duration_ms = (np.exp(log_dur).clip(5.0, 300.0) * 1000).astype(np.int64)
        self.music_id = music
        self.visible = r.random(v) >= c.hidden_fraction
        self.item_ids = ITEM_ID_BASE + np.arange(v, dtype=np.int64)

    # ---- lookups ----------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return int(self.user_ids.size)

    @property
    def n_items(self) -> int:
        """Videos over the whole horizon (including ones not uploaded yet)."""
        return int(self.item_ids.size)

    def n_uploaded(self, now_ms: int | np.ndarray) -> np.ndarray:
        """Number of videos uploaded at or before `now_ms` (the catalog prefix length)."""
        return np.searchsorted(self.upload_ms, now_ms, side="right")

    def item_index(self, item_ids: np.ndarray) -> np.ndarray:
        """(N,) int64 positions of raw item ids; -1 for ids not in this world."""
        idx = np.asarray(item_ids, dtype=np.int64) - ITEM_ID_BASE
        return np.where((idx >= 0) & (idx < self.n_items), idx, -1)

    def user_index(self, user_ids: np.ndarray) -> np.ndarray:
        """(N,) int64 positions of raw user ids; -1 for ids not in this world."""
        idx = np.asarray(user_ids, dtype=np.int64) - USER_ID_BASE
        return np.where((idx >= 0) & (idx < self.n_users), idx, -1)

    def available_item_ids(self, now_ms: int) -> np.ndarray:
        """Ids of the visible videos uploaded by `now_ms` (what a feed may show)."""
        n = int(self.n_uploaded(now_ms))
        return self.item_ids[:n][self.visible[:n]]

    def day_index(self, t_ms: np.ndarray | int) -> np.ndarray:
        d = (np.asarray(t_ms, dtype=np.int64) - self.cfg.start_ms) // DAY_MS
        return np.clip(d, 0, self.cfg.horizon_days - 1)

    def hour_index(self, t_ms: np.ndarray | int) -> np.ndarray:
        h = (np.asarray(t_ms, dtype=np.int64) - self.cfg.start_ms) // HOUR_MS
        return np.clip(h, 0, self.trend.shape[1] - 1)

    # ---- the truth --------------------------------------------------------------------
    def topic_affinity(self, u: np.ndarray, v: np.ndarray, t_ms: np.ndarray | int) -> np.ndarray:
        """(N,) float32 in [0, 1]: interest of users u in the topic mix of videos v at t."""
        d = self.day_index(t_ms)
        if d.ndim == 0:  # one time for all rows: index the (U, T) snapshot of that day
            inter = self.interest[int(d)]
            return np.asarray(0.75 * inter[u, self.topic[v]] + 0.25 * inter[u, self.topic2[v]])
        d = np.broadcast_to(d, np.shape(u))
        first = self.interest[d, u, self.topic[v]]
        return np.asarray(0.75 * first + 0.25 * self.interest[d, u, self.topic2[v]])

    def affinity(self, u: np.ndarray, v: np.ndarray, t_ms: np.ndarray | int) -> np.ndarray:
        """(N,) float32 true static affinity of users u for videos v at time t (indices):
        the topic and hidden-taste terms, without quality, trend or freshness."""
        a = self.topic_affinity(u, v, t_ms)
        lat = np.einsum("nk,nk->n", self.z_user[u], self.z_item[v])
        out = B_TOPIC * np.log(0.05 + self.cfg.topics * a) + B_LATENT * lat
        return np.asarray(out, dtype=np.float32)

    def utility(
        self, u: np.ndarray, v: np.ndarray, t_ms: np.ndarray | int, dynamic: bool = True
    ) -> np.ndarray:
        """(N,) float32 expected engagement (logit scale) of users u with videos v at t.

        `dynamic=False` leaves out what changes by the hour (trend and freshness): the part a
        model trained once on old logs could at best know.
        """
        util = self.affinity(u, v, t_ms) + B_QUALITY * self.quality[v] + self.user_bias[u]
        if dynamic:
            age = np.maximum(np.asarray(t_ms, dtype=np.int64) - self.upload_ms[v], 0)
            util = util + B_FRESH * np.exp(-age / FRESH_TAU_MS).astype(np.float32)
            util = util + self.trend[self.topic[v], self.hour_index(t_ms)]
        return np.asarray(util, dtype=np.float32)

    def utility_all(self, u: int, now_ms: int, dynamic: bool = True) -> np.ndarray:
        """(M,) float32 `utility` of user u for every video uploaded by `now_ms` (hidden
        ones included), computed in one pass: what an all-knowing ranker would score."""
        m = int(self.n_uploaded(now_ms))
        inter = self.interest[int(self.day_index(now_ms)), u]  # (T,)
        a = 0.75 * inter[self.topic[:m]] + 0.25 * inter[self.topic2[:m]]
        util = B_TOPIC * np.log(0.05 + self.cfg.topics * a) + self.z_item[:m] @ (
            B_LATENT * self.z_user[u]
        )
        util += B_QUALITY * self.quality[:m] + self.user_bias[u]
        if dynamic:
            age = np.maximum(now_ms - self.upload_ms[:m], 0)
            util += B_FRESH * np.exp(-age / FRESH_TAU_MS).astype(np.float32)
            util += self.trend[self.topic[:m], int(self.hour_index(now_ms))]
        return np.asarray(util, dtype=np.float32)

    # ---- tables -----------------------------------------------------------------------
    @cached_property
    def _items_table(self) -> pa.Table:
        tags = _tag_lists(self.topic, self.sub1, self.sub2)
        cols = {
            "item_id": pa.array(self.item_ids),
            "author_id": pa.array(AUTHOR_ID_BASE + self.author),
            "duration_ms": pa.array(self.duration_ms),
            "upload_ms": pa.array(self.upload_ms),
            "music_id": pa.array(self.music_id),
            "tags": tags,
            "visible": pa.array(self.visible),
            "topic": pa.array(self.topic),
        }
        schema = ITEM_SCHEMA.append(pa.field("topic", pa.int64()))
        return pa.Table.from_pydict(cols, schema=schema)

    def catalog(self, now_ms: int, visible_only: bool = False) -> pa.Table:
        """Videos uploaded at or before `now_ms` (ITEM_SCHEMA + `topic`), upload order.
        Hidden videos are included with visible=False unless `visible_only`."""
        t = self._items_table.slice(0, int(self.n_uploaded(now_ms)))
        if visible_only:
            t = t.filter(pa.array(self.visible[: t.num_rows]))
        return t

    def users_table(self) -> pa.Table:
        """USER_SCHEMA + age_bucket, activity_bucket (0 = least active quintile),
        primary_topic (top interest on the first day)."""
        ranks = np.argsort(np.argsort(self.activity, kind="stable"), kind="stable")
        bucket = (ranks * ACTIVITY_BUCKETS) // self.n_users
        return pa.table(
            {
                "user_id": pa.array(self.user_ids),
                "age_bucket": pa.array(self.age.astype(np.int64)),
                "activity_bucket": pa.array(bucket.astype(np.int64)),
                "primary_topic": pa.array(self.interest[0].argmax(1).astype(np.int64)),
            }
        )


def _dirichlet_rows(r: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """One Dirichlet draw per row of alpha (N, T), vectorised through gamma variates."""
    g = r.gamma(alpha) + 1e-12
    return np.asarray(g / g.sum(1, keepdims=True), dtype=np.float32)


def _tag_lists(topic: np.ndarray, sub1: np.ndarray, sub2: np.ndarray) -> pa.Array:
    """tags per video: [topic tag, sub-tag, (second sub-tag)] as a list<int64> column."""
    n = topic.size
    has2 = sub2 >= 0
    lengths = 2 + has2.astype(np.int64)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.empty(int(offsets[-1]), dtype=np.int64)
    values[offsets[:-1]] = 1 + topic
    values[offsets[:-1] + 1] = SUBTAG_BASE + sub1
    values[offsets[:-1][has2] + 2] = SUBTAG_BASE + sub2[has2]
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def events_table(
    user_id: np.ndarray,
    item_id: np.ndarray,
    timestamp_ms: np.ndarray,
    watch_ms: np.ndarray,
    duration_ms: np.ndarray,
    labels: dict[str, np.ndarray],
    tab: int = FEED_TAB,
) -> pa.Table:
    """Build an EVENT_SCHEMA table from column arrays (N,)."""
    ts = timestamp_ms.astype(np.int64)
    cols: dict[str, pa.Array] = {
        "user_id": pa.array(user_id.astype(np.int64)),
        "item_id": pa.array(item_id.astype(np.int64)),
        "timestamp_ms": pa.array(ts),
        "tab": pa.array(np.full(ts.size, tab, dtype=np.int64)),
        "hour": pa.array((ts // HOUR_MS) % 24),
        "watch_ms": pa.array(watch_ms.astype(np.int64)),
        "duration_ms": pa.array(duration_ms.astype(np.int64)),
    }
    for name in LABELS:
        cols[name] = pa.array(labels[name].astype(np.int8))
    return pa.Table.from_pydict(cols, schema=EVENT_SCHEMA)
