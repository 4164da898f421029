"""Turn canonical events + item/user tables into model-ready features, without leakage.

Feature groups (F = number of categorical fields, L = history length, T = tasks):
- own tables:  user_id, item_id, author_id, music_id, tags (multi-valued, mean-pooled),
               hist_item / hist_author (the last L positives before the event: sequences)
- "fields" (one shared table, ids salted by field): tab, hour, weekday, duration bucket,
               age-since-upload bucket, every extra item column and every extra user column
- dense:       log duration, unknown-duration flag, log age, causal counters of the user
               and the item (prior events, smoothed prior positive rate per task), how many
               of the user's recent long views share the candidate's author / first tag, and
               the session: log time since the user's previous event, whether there was
               one, log of the user's earlier events in this session

Everything is computed from information before the event's timestamp (see history.py);
the event's own watch time and labels are only ever targets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import torch

from reelrec.batch import Batch, Jagged, KeyedJagged
from reelrec.data.records import ITEM_SCHEMA, USER_SCHEMA
from reelrec.errors import NotFittedError
from reelrec.features.history import ServingState, causal_features
from reelrec.models.api import ItemCatalog

RANK_TASKS = ("long_view", "is_click", "is_like", "is_follow")
WATCH_TASK = "watch_ratio"  # regression: play time / duration, clipped to [0, 2]
DURATION_EDGES_S = np.array([5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600], dtype=np.float64)
AGE_EDGES_H = np.array([1, 3, 6, 12, 24, 48, 72, 120, 168, 336, 720, 2160], dtype=np.float64)
MAX_TAGS = 4
FIELD_SALT_BITS = 40  # field f's value v becomes (f << 40) | v: distinct for v < 2**40
SMOOTHING = 20.0  # pseudo-events pulling a counter's rate to the global rate
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000


@dataclass
class FeatureConfig:
    """What `FeatureBuilder.fit` learned; stored in every model directory as JSON."""

    history_len: int = 20
    tasks: list[str] = field(default_factory=list)  # binary tasks present in the data
    watch_task: bool = False
    item_columns: list[str] = field(default_factory=list)  # extra categorical item columns
    user_columns: list[str] = field(default_factory=list)
    global_rates: list[float] = field(default_factory=list)  # per task, for smoothing
    dense_mean: list[float] = field(default_factory=list)
    dense_std: list[float] = field(default_factory=list)

    @property
    def field_names(self) -> list[str]:
        ctx = ["tab", "hour", "weekday", "duration_bucket", "age_bucket"]
        return (
            ctx
            + [f"item.{c}" for c in self.item_columns]
            + [f"user.{c}" for c in self.user_columns]
        )

    @property
    def n_dense(self) -> int:
        return 3 + 2 * (1 + len(self.tasks)) + 2 + 3

    @property
    def all_tasks(self) -> list[str]:
        return self.tasks + ([WATCH_TASK] if self.watch_task else [])


@dataclass
class FeatureFrame:
    """Features of N events as numpy columns; `batches` slices them into `Batch`es."""

    user_id: np.ndarray  # (N,)
    item_id: np.ndarray
    author_id: np.ndarray
    music_id: np.ndarray
    fields: np.ndarray  # (N, F) salted ids
    tags: np.ndarray  # (N, MAX_TAGS), -1 padded
    hist_item: np.ndarray  # (N, L), -1 padded at the end, oldest first
    hist_author: np.ndarray
    dense: np.ndarray  # (N, n_dense) float32, standardised
    labels: np.ndarray | None  # (N, T) float32
    timestamp_ms: np.ndarray

    def __len__(self) -> int:
        return int(self.user_id.size)

    def take(self, idx: np.ndarray | slice) -> FeatureFrame:
        parts = {k: (v[idx] if v is not None else None) for k, v in vars(self).items()}
        return FeatureFrame(**parts)  # type: ignore[arg-type]  # only `labels` may be None

    def batch(self, idx: np.ndarray | slice) -> Batch:
        part = self.take(idx)
        return Batch(
            dense=torch.from_numpy(part.dense),
            sparse=KeyedJagged(
                {
                    "user_id": Jagged.from_dense(torch.from_numpy(part.user_id)),
                    "item_id": Jagged.from_dense(torch.from_numpy(part.item_id)),
                    "author_id": Jagged.from_dense(torch.from_numpy(part.author_id)),
                    "music_id": Jagged.from_dense(torch.from_numpy(part.music_id)),
                    "fields": _fixed(part.fields),
                    "tags": _padded(part.tags),
                    "hist_item": _padded(part.hist_item),
                    "hist_author": _padded(part.hist_author),
                }
            ),
            labels=torch.from_numpy(part.labels) if part.labels is not None else None,
            request_ids=torch.from_numpy(np.ascontiguousarray(part.timestamp_ms)),
        )

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, user_chunk: int = 1,
                by_day: bool = False):  # type: ignore[no-untyped-def]  # fmt: skip
        """Batches of rows in order, or shuffled: row by row, or with `user_chunk` > 1 in runs
        of up to that many consecutive events of one user (see `user_chunk_order`); with
        `by_day`, the shuffled rows come one UTC day after another, in time order."""
        order = None
        if shuffle:
            rng = np.random.default_rng(seed)
            order = (
                user_chunk_order(self.user_id, user_chunk, rng)
                if user_chunk > 1
                else rng.permutation(len(self))
            )
            if by_day:
                order = order[np.argsort(self.timestamp_ms[order] // MS_PER_DAY, kind="stable")]
        for lo in range(0, len(self), batch_size):
            idx = order[lo : lo + batch_size] if order is not None else slice(lo, lo + batch_size)
            yield self.batch(idx)


def user_chunk_order(user_id: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A shuffled order of the rows in which each user's events come in runs of `size`
    consecutive events (in their original, time order): the chunks are shuffled, not the
    rows, so every batch holds pairs of one user's rows for a within-user loss."""
    by_user = np.argsort(user_id, kind="stable")
    u = user_id[by_user]
    first = np.r_[0, np.flatnonzero(u[1:] != u[:-1]) + 1] if u.size else np.zeros(0, np.int64)
    rank = np.arange(u.size) - np.repeat(first, np.diff(np.r_[first, u.size]))
    chunk = np.cumsum(rank % size == 0) - 1  # chunk number of each row, in by_user order
    place = rng.permutation(int(chunk[-1]) + 1 if u.size else 0)
    return by_user[np.argsort(place[chunk], kind="stable")]  # type: ignore[no-any-return]


@dataclass
class CausalInputs:
    """The causal values of N rows that dense features are built from (see history.py):
    training and evaluation get them from the causal pass, the server from its state."""

    user_n: np.ndarray  # (N,)
    user_pos: np.ndarray  # (N, T)
    item_n: np.ndarray  # (N,)
    item_pos: np.ndarray  # (N, T)
    gap_ms: np.ndarray  # (N,) since the user's previous event, -1: none
    session_pos: np.ndarray  # (N,)


def _fixed(a: np.ndarray) -> Jagged:
    b, f = a.shape
    return Jagged(torch.from_numpy(np.ascontiguousarray(a).reshape(-1)), torch.full((b,), f))


def _padded(a: np.ndarray) -> Jagged:
    """(B, L) with -1 padding -> Jagged of the valid ids, order kept."""
    mask = a >= 0
    return Jagged(torch.from_numpy(a[mask]), torch.from_numpy(mask.sum(axis=1).astype(np.int64)))


def _bucket(x: np.ndarray, edges: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Bucket index 1..len(edges)+1, 0 where unknown."""
    return np.where(known, np.searchsorted(edges, x, side="right") + 1, 0).astype(np.int64)


class UserTable:
    """User profile columns with vectorised id -> row lookup (-1 rows give value -1)."""

    def __init__(self, users: pa.Table, columns: list[str]) -> None:
        self.table = users
        ids = users.column("user_id").to_numpy().astype(np.int64)
        order = np.argsort(ids, kind="stable")
        self._ids, self._pos = ids[order], order
        self.columns = {c: _int_column(users, c) for c in columns}

    def values(self, user_ids: np.ndarray) -> dict[str, np.ndarray]:
        if not self._ids.size:
            return {c: np.full(user_ids.shape, -1, np.int64) for c in self.columns}
        idx = np.clip(np.searchsorted(self._ids, user_ids), 0, self._ids.size - 1)
        found = self._ids[idx] == user_ids
        pos = self._pos[idx]
        return {c: np.where(found, col[pos], -1) for c, col in self.columns.items()}


def _int_column(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name).combine_chunks()
    return col.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _extra_int_columns(table: pa.Table, base: pa.Schema) -> list[str]:
    return [
        f.name for f in table.schema if f.name not in base.names and pa.types.is_integer(f.type)
    ]


class FeatureBuilder:
    """Fits on training interactions, then turns any events into `FeatureFrame`s.

    Learned state ends in `_`. Example::

        fb = FeatureBuilder(history_len=20).fit(events, items, users, labels)
        frame, state = fb.transform(events)
        for batch in frame.batches(1024, shuffle=True): ...
    """

    def __init__(self, *, history_len: int = 20) -> None:
        self.history_len = history_len

    def fit(
        self, events: pa.Table, items: pa.Table, users: pa.Table, labels: tuple[str, ...]
    ) -> FeatureBuilder:
        self.fit_transform(events, items, users, labels)
        return self

    def fit_transform(
        self, events: pa.Table, items: pa.Table, users: pa.Table, labels: tuple[str, ...]
    ) -> tuple[FeatureFrame, ServingState]:
        """`fit`, and the training events' features and end state from the same pass."""
        tasks = [t for t in RANK_TASKS if t in labels]
        watch = bool(np.any(events.column("watch_ms").to_numpy() > 0))
        rates = [
            float(np.mean(events.column(t).to_numpy())) if events.num_rows else 0.0 for t in tasks
        ]
        self.config_ = FeatureConfig(
            history_len=self.history_len,
            tasks=tasks,
            watch_task=watch,
            item_columns=_extra_int_columns(items, ITEM_SCHEMA),
            user_columns=_extra_int_columns(users, USER_SCHEMA),
            global_rates=rates,
        )
        self._set_tables(items, users)
        frame, state = self._transform(events, standardise=False)
        mean = frame.dense.mean(axis=0)
        std = frame.dense.std(axis=0)
        # a column constant in training (e.g. counters with one day of data) is only centred
        std = np.where(std > 1e-3, std, 1.0)
        self.config_.dense_mean, self.config_.dense_std = mean.tolist(), std.tolist()
        frame.dense = ((frame.dense - mean) / std).astype(np.float32)
        return frame, state

    @classmethod
    def from_config(cls, config: FeatureConfig, items: pa.Table, users: pa.Table) -> FeatureBuilder:
        fb = cls(history_len=config.history_len)
        fb.config_ = config
        fb._set_tables(items, users)
        return fb

    def _set_tables(self, items: pa.Table, users: pa.Table) -> None:
        self.catalog_ = ItemCatalog(items)
        self.users_ = UserTable(users, self.config_.user_columns)
        self.item_extra_ = {c: _int_column(items, c) for c in self.config_.item_columns}

    def _check(self) -> FeatureConfig:
        if not hasattr(self, "config_"):
            raise NotFittedError(type(self).__name__)
        return self.config_

    def transform(
        self,
        events: pa.Table,
        start: ServingState | None = None,
        after_cutoff: np.ndarray | bool = False,
    ) -> tuple[FeatureFrame, ServingState]:
        """Features for `events` (sorted by time) and the state after them.

        Histories and counters continue from `start` (e.g. a model's state at the end of its
        training data); without it they are built from these events alone. On the rows
        `after_cutoff` ((N,) bool, or True for all) the user counters hold at their values as
        of the model's training cut-off (see history.py).
        """
        return self._transform(events, True, start, after_cutoff)

    def _transform(
        self,
        events: pa.Table,
        standardise: bool,
        start: ServingState | None = None,
        after_cutoff: np.ndarray | bool = False,
    ) -> tuple[FeatureFrame, ServingState]:
        cfg = self._check()
        col = {name: events.column(name).to_numpy() for name in events.column_names}
        ts, users, items = col["timestamp_ms"], col["user_id"], col["item_id"]
        n = ts.size
        labels = np.stack([col[t] for t in cfg.tasks], axis=1) if cfg.tasks else np.zeros((n, 0))
        # History = long views (serve/state.py is_positive has the twin rule for live events).
        positive = col["long_view"] > 0 if "long_view" in cfg.tasks else col["is_click"] > 0
        known_users = start.user_ids if start is not None else np.zeros(0, np.int64)
        known_items = start.item_ids if start is not None else np.zeros(0, np.int64)
        uniq_users = np.union1d(known_users, users).astype(np.int64)
        uniq_items = np.union1d(known_items, items).astype(np.int64)
        user_local, item_local = (
            np.searchsorted(uniq_users, users),
            np.searchsorted(uniq_items, items),
        )
        causal, state = causal_features(
            ts, user_local, item_local, positive, labels, uniq_users.size, uniq_items.size,
            cfg.history_len, start.to_local(uniq_users, uniq_items) if start is not None else None,
            after_cutoff,
        )  # fmt: skip
        hist_item = np.where(causal.hist >= 0, uniq_items[np.maximum(causal.hist, 0)], -1)
        item_pos = self.catalog_.positions(items)
        inputs = CausalInputs(causal.user_n, causal.user_pos, causal.item_n, causal.item_pos,
                              causal.gap_ms, causal.session_pos)  # fmt: skip
        frame = self.assemble(
            users, items, item_pos, ts, col["tab"], col["duration_ms"], hist_item, inputs,
            standardise,
        )  # fmt: skip
        frame.labels = (
            self._labels(col, cfg) if n else np.zeros((0, len(cfg.all_tasks)), np.float32)
        )
        return frame, ServingState.from_local(state, uniq_users, uniq_items)

    def _labels(self, col: dict[str, np.ndarray], cfg: FeatureConfig) -> np.ndarray:
        out = [col[t].astype(np.float32) for t in cfg.tasks]
        if cfg.watch_task:
            dur = col["duration_ms"].astype(np.float64)
            ratio = np.where(dur > 0, col["watch_ms"] / np.maximum(dur, 1.0), np.nan)
            out.append(np.clip(ratio, 0.0, 2.0).astype(np.float32))
        return np.stack(out, axis=1)

    def assemble(self, users, items, item_pos, ts, tab, event_duration, hist_item,
                  causal: CausalInputs, standardise) -> FeatureFrame:  # type: ignore[no-untyped-def]  # fmt: skip
        cfg = self._check()
        cat = self.catalog_
        known = item_pos >= 0
        safe = np.maximum(item_pos, 0)
        author = cat.authors(item_pos)
        music = np.where(known, cat.music_id[safe], -1) if len(cat) else author
        duration = np.where(known, cat.duration_ms[safe], 0) if len(cat) else event_duration
        duration = np.where(duration > 0, duration, event_duration)
        upload = np.where(known, cat.upload_ms[safe], 0) if len(cat) else np.zeros_like(ts)
        dur_s = duration / 1000.0
        age_h = np.maximum(ts - upload, 0) / MS_PER_HOUR
        has_upload = upload > 0
        fields = [
            tab.astype(np.int64),
            # from the start time; KuaiRand's `hour` is stamped after the view (kuairand.py)
            ((ts // MS_PER_HOUR) % 24).astype(np.int64),
            ((ts // MS_PER_DAY + 3) % 7).astype(np.int64),  # 1970-01-01 was a Thursday
            _bucket(dur_s, DURATION_EDGES_S, duration > 0),
            _bucket(age_h, AGE_EDGES_H, has_upload),
        ]
        for c in cfg.item_columns:
            fields.append(np.where(known, self.item_extra_[c][safe], -1))
        fields.extend(self.users_.values(users).values())
        salted = np.stack(
            [
                (np.int64(f) << FIELD_SALT_BITS) | (v & ((1 << FIELD_SALT_BITS) - 1))
                for f, v in enumerate(fields)
            ],
            axis=1,
        )
        hist_pos = cat.positions(hist_item.reshape(-1)).reshape(hist_item.shape)
        hist_author = np.where(hist_item >= 0, cat.authors(hist_pos), -1)
        hist_tag = (
            np.where(hist_pos >= 0, cat.first_tag(np.maximum(hist_pos, 0)), -1)
            if len(cat)
            else hist_pos
        )
        tag = np.where(known, cat.first_tag(safe), -2) if len(cat) else np.full_like(items, -2)
        same_author = ((hist_author == author[:, None]) & (author[:, None] >= 0)).sum(axis=1)
        same_tag = ((hist_tag == tag[:, None]) & (tag[:, None] >= 0)).sum(axis=1)
        dense = self._dense(dur_s, duration > 0, age_h * has_upload, causal, same_author,
                            same_tag)  # fmt: skip
        if standardise:
            dense = (dense - np.asarray(cfg.dense_mean, np.float32)) / np.asarray(
                cfg.dense_std, np.float32
            )
        return FeatureFrame(
            user_id=users.astype(np.int64),
            item_id=items.astype(np.int64),
            author_id=author.astype(np.int64),
            music_id=music.astype(np.int64),
            fields=salted,
            tags=self._tags(item_pos),
            hist_item=hist_item.astype(np.int64),
            hist_author=hist_author.astype(np.int64),
            dense=dense.astype(np.float32),
            labels=None,
            timestamp_ms=ts.astype(np.int64),
        )

    def _dense(self, dur_s, dur_known, age_h, c: CausalInputs, same_author, same_tag):  # type: ignore[no-untyped-def]
        cfg = self._check()
        rates = np.asarray(cfg.global_rates, np.float64)
        user_rate = (c.user_pos + SMOOTHING * rates) / (c.user_n[:, None] + SMOOTHING)
        item_rate = (c.item_pos + SMOOTHING * rates) / (c.item_n[:, None] + SMOOTHING)
        has_prev = c.gap_ms >= 0
        cols = [
            np.log1p(dur_s)[:, None],
            dur_known[:, None].astype(np.float64),
            np.log1p(age_h)[:, None],
            np.log1p(c.user_n)[:, None],
            user_rate,
            np.log1p(c.item_n)[:, None],
            item_rate,
            # the user's recent long views by the candidate's author / with its first tag
            np.log1p(same_author)[:, None],
            np.log1p(same_tag)[:, None],
            # the session: on KuaiRand, AUC +.0015 and GAUC +.001 on long_view (5 seeds)
            np.where(has_prev, np.log1p(np.maximum(c.gap_ms, 0) / 1000.0), 0.0)[:, None],
            has_prev[:, None].astype(np.float64),
            np.log1p(c.session_pos)[:, None],
        ]
        return np.concatenate(cols, axis=1).astype(np.float32)

    def _tags(self, item_pos: np.ndarray) -> np.ndarray:
        cat = self.catalog_
        out = np.full((item_pos.size, MAX_TAGS), -1, dtype=np.int64)
        if not len(cat):
            return out
        safe = np.maximum(item_pos, 0)
        start, end = cat.tag_offsets[safe], cat.tag_offsets[safe + 1]
        for j in range(MAX_TAGS):
            has = (item_pos >= 0) & (start + j < end)
            out[has, j] = cat.tag_values[(start + j)[has]]
        return out

    def config_dict(self) -> dict[str, object]:
        return asdict(self._check())
