"""`DynamicEmbedding`: one collision-free table whose rows grow, expire and learn in place.

Layout (C = row capacity, D = dim):
- host: `IdIndex` raw id -> row, and per-row metadata (numpy, (C,)): the row's id, live flag,
  last sighting in event time (TTL), last training lookup call (LRU), sightings (LFU), and the
  version at which the row last changed (deltas);
- device: `weight` (C, D) float32 and the optimizer state: row-wise Adagrad `acc` (C,);
  Adam `m`, `v` (C, D) and per-row `steps` (C,).

Row 0 is the shared default: it stays zero and never receives an update; ids that are not
(yet) admitted, or unseen in eval mode, map to it. Real rows are 1..C-1. Rows are allocated
from a LIFO free list first, then from the high-water mark; capacity grows in multiples of
`chunk_rows` (x1.5 at least, so the copy on growth is amortised O(1) per insert).

Randomness is counter-based (a hash of seed, id and a draw counter), so checkpoint -> restore
-> continue is bit-identical to never stopping: the only state is the seed and the counter.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from reelrec.embedding import _kernels as K
from reelrec.embedding.config import EmbeddingTableConfig, EvictionPolicy, OptimizerType
from reelrec.embedding.index import IdIndex
from reelrec.errors import ConfigError, IntegrityError
from reelrec.store import read_file, read_manifest, write_model_dir

STATE_FORMAT = "reelrec-embedding/1"
DELTA_FORMAT = "reelrec-embedding-delta/1"
_HOST_META = ("row_id", "last_seen", "last_tick", "count", "row_version")
# Host metadata of a row is packed in one 64-byte record (one cache line): the columns above,
# then the dedup scratch (mark, pos), then padding. A batch lookup touches each row's record
# once instead of missing the cache in seven separate arrays.
_META_COLS = (*_HOST_META, "mark", "pos", "_pad")
_NEVER = np.iinfo(np.int64).min


class VersionClock:
    """A counter shared by the tables of one collection: every mutation takes the next
    value, so one `since_version` selects the changes of all tables."""

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def tick(self) -> int:
        self.value += 1
        return self.value


@dataclasses.dataclass
class Segment:
    """One output built from ids[start:stop] of a plan (a feature, pooled or as a sequence).

    `bag` set: every output row sums exactly `bag` consecutive ids (fast path). Otherwise
    `out_idx` (stop - start,) names each id's output row. `scale` (n_out,) multiplies the
    summed rows (mean pooling); None means 1.
    """

    start: int
    stop: int
    n_out: int
    bag: int | None = None
    out_idx: np.ndarray | None = None
    scale: np.ndarray | None = None
    out_idx_t: Tensor | None = None
    scale_t: Tensor | None = None


@dataclasses.dataclass
class LookupPlan:
    """Resolved rows of one batch of ids for one table: rows (N,) == uniq[inverse]."""

    rows: np.ndarray
    uniq: np.ndarray
    inverse: np.ndarray
    rows_t: Tensor
    inverse_t: Tensor | None
    uniq_ids: np.ndarray
    evict_epoch: int
    segments: list[Segment]


def _ids_numpy(ids: Tensor | np.ndarray, table: str) -> np.ndarray:
    """Raw ids arrive on the host; accept a tensor (moved to cpu if needed) or an array."""
    if isinstance(ids, Tensor):
        if ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"embedding table {table!r}: ids must be int64, got {ids.dtype}")
        arr = ids.detach().to("cpu", torch.int64).reshape(-1).numpy()
    else:
        arr = np.asarray(ids).reshape(-1)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"embedding table {table!r}: ids must be integers, got {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


class DynamicEmbedding:
    """One dynamic embedding table (see module docstring for the layout).

    Args:
        config: the table's `EmbeddingTableConfig`.
        device: where rows and optimizer state live (default cpu).
        clock: a shared `VersionClock` (a collection passes one); default a private one.

    Attributes:
        training: admission, insertion and sighting counts happen only when True.
        requires_update: when False the backward applies no optimizer update (frozen).
        version: the clock value of this table's last change.

    Example::

        table = DynamicEmbedding(EmbeddingTableConfig(name="video", dim=16))
        rows = table.lookup(torch.tensor([7, 7, 42]))   # admits 7 and 42 -> rows [1, 1, 2]
        emb = table.embed(torch.tensor([7, 42]))        # (2, 16), differentiable
        emb.sum().backward()                            # fused row-wise update of rows 1, 2
    """

    # False runs the portable torch path on CPU too (tests use it to check that path).
    numba_on_cpu: bool = True

    def __init__(
        self,
        config: EmbeddingTableConfig,
        device: torch.device | None = None,
        clock: VersionClock | None = None,
    ) -> None:
        if not isinstance(config, EmbeddingTableConfig):
            raise ConfigError(f"DynamicEmbedding needs an EmbeddingTableConfig, got {type(config)}")
        self.config = config
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.clock = clock if clock is not None else VersionClock()
        self.training = True
        self.requires_update = True
        self._on_cpu = self.device.type == "cpu"
        # numba kernels on CPU; the portable torch path (index_select / index_add_) elsewhere.
        self._numba = self._on_cpu and self.numba_on_cpu
        # int32 row numbers on accelerators (int64 indexing is a slow path on Ascend).
        self._index_dtype = torch.int64 if self._on_cpu else torch.int32
        self._reset()

    # ------------------------------------------------------------------------------------
    # storage
    # ------------------------------------------------------------------------------------
    def _reset(self, capacity: int | None = None) -> None:
        cfg = self.config
        cap = capacity or cfg.chunk_rows
        self.version = 0
        self._index = IdIndex()
        self._tombstones = IdIndex()  # evicted id -> version of its eviction (for deltas)
        self._next_row = 1  # row 0 is the shared zero default
        self._free = np.empty(0, dtype=np.int64)
        self._n_free = 0
        self._now_ms = 0
        self._tick = 0  # training lookup calls (LRU clock)
        self._draws = 0  # admit_prob draw counter (counter-based RNG)
        self._gen = 0  # dedup generation
        self._evict_epoch = 0
        self._sketch = (
            np.zeros((cfg.sketch_depth, cfg.sketch_width), dtype=np.int32)
            if cfg.min_count > 1
            else None
        )
        self._capacity = 0
        self.weight = torch.zeros(0, cfg.dim, device=self.device)
        self._opt: dict[str, Tensor] = {}
        self._rowmeta = np.zeros((0, len(_META_COLS)), dtype=np.int64)
        self._meta: dict[str, np.ndarray] = {}  # column views of _rowmeta
        self._live = np.zeros(0, dtype=bool)
        self._grow(cap)

    def _opt_shapes(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        cfg = self.config
        if cfg.optimizer == OptimizerType.ROWWISE_ADAGRAD:
            return {"acc": ((), torch.float32)}
        if cfg.optimizer == OptimizerType.ADAM:
            return {
                "m": ((cfg.dim,), torch.float32),
                "v": ((cfg.dim,), torch.float32),
                "steps": ((), torch.int64),
            }
        return {}

    def _grow(self, need: int) -> None:
        """Make room for rows [0, need): new capacity >= max(need, 1.5 x old), in chunks."""
        if need <= self._capacity:
            return
        chunk = self.config.chunk_rows
        cap = max(need, int(self._capacity * 1.5))
        cap = -(-cap // chunk) * chunk
        old = self._capacity

        def grown(t: Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
            # No zero fill: rows past the high-water mark are never read before _insert
            # writes them (weights) or zeroes them (optimizer state); row 0 is zeroed here.
            new = torch.empty((cap, *shape), dtype=dtype, device=self.device)
            if old:
                new[:old] = t[:old]
            else:
                new[:1] = 0
            return new

        self.weight = grown(self.weight, (self.config.dim,), torch.float32)
        for name, (shape, dtype) in self._opt_shapes().items():
            self._opt[name] = grown(self._opt.get(name, torch.zeros(0)), shape, dtype)
        meta = np.zeros((cap, len(_META_COLS)), dtype=np.int64)
        meta[old:, _META_COLS.index("last_seen")] = _NEVER
        meta[old:, _META_COLS.index("mark")] = -1
        meta[:old] = self._rowmeta[:old]
        self._rowmeta = meta
        self._meta = {name: meta[:, k] for k, name in enumerate(_META_COLS)}
        self._mark = self._meta["mark"]
        self._pos = self._meta["pos"]
        self._live = np.concatenate([self._live, np.zeros(cap - old, dtype=bool)])
        self._capacity = cap

    # ------------------------------------------------------------------------------------
    # modes and time
    # ------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> DynamicEmbedding:
        self.training = mode
        return self

    def eval(self) -> DynamicEmbedding:
        return self.train(False)

    def set_time(self, now_ms: int) -> None:
        """Set the current event time (ms); sightings are stamped with it, TTL counts from it."""
        self._now_ms = int(now_ms)

    @property
    def now_ms(self) -> int:
        return self._now_ms

    @property
    def num_rows(self) -> int:
        """Ids holding a row now."""
        return len(self._index)

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return self.num_rows

    def __contains__(self, id_: int) -> bool:
        return bool(self._index.lookup(np.array([id_], dtype=np.int64))[0] >= 0)

    def ids(self) -> np.ndarray:
        """All ids that hold a row, in row order."""
        return self._index.items()[0]

    def _bump(self) -> int:
        self.version = self.clock.tick()
        return self.version

    # ------------------------------------------------------------------------------------
    # resolving ids to rows
    # ------------------------------------------------------------------------------------
    def _resolve(self, ids: np.ndarray) -> np.ndarray:
        """ids (N,) -> rows (N,) int64; in training mode admit and insert, and count sightings."""
        rows = np.empty(ids.shape[0], dtype=np.int64)
        misses = K.hm_lookup(self._index._slots, self._index._mask, ids, rows)
        if self.training:
            if misses:
                miss = rows < 0
                self._admit_and_insert(ids[miss], protect=rows[~miss])
                rows[miss] = self._index.lookup(ids[miss])
            np.maximum(rows, 0, out=rows)
            self._tick += 1
            m = self._meta
            K.touch_rows(rows, self._now_ms, self._tick, m["last_seen"], m["last_tick"], m["count"])
        elif misses:
            np.maximum(rows, 0, out=rows)
        return rows

    def _admit_and_insert(self, missing: np.ndarray, protect: np.ndarray) -> None:
        cap = 16
        while cap < 2 * missing.shape[0]:
            cap *= 2
        scratch = np.full(2 * cap, K.EMPTY, dtype=np.int64)
        cand, counts = K.first_occurrence(missing, scratch, np.int64(cap - 1))
        ok = np.ones(cand.shape[0], dtype=bool)
        cfg = self.config
        if self._sketch is not None:
            est = np.empty(cand.shape[0], dtype=np.int64)
            K.sketch_add(self._sketch, cand, counts, est)
            ok &= est >= cfg.min_count
        if cfg.admit_prob < 1.0 and ok.any():
            draws = np.empty(cand.shape[0], dtype=np.float64)
            K.admit_draws(cand, cfg.seed, self._draws, draws)
            self._draws += 1
            ok &= draws < cfg.admit_prob
        new_ids = cand[ok]
        if new_ids.size:
            self._insert(new_ids, protect)

    def _insert(self, new_ids: np.ndarray, protect: np.ndarray | None = None) -> np.ndarray:
        """Give each (absent) id a fresh row, evicting first if max_rows says so."""
        version = self._bump()
        cfg = self.config
        if cfg.max_rows is not None:
            room = cfg.max_rows - self.num_rows
            if new_ids.shape[0] > room:
                evicted = self._evict_for_room(new_ids.shape[0] - room, protect)
                room += evicted
                new_ids = new_ids[: max(room, 0)]
        n = new_ids.shape[0]
        if n == 0:
            return np.empty(0, dtype=np.int64)
        take = min(n, self._n_free)
        # LIFO: the most recently freed row is reused first.
        reused = self._free[self._n_free - take : self._n_free][::-1].copy()
        self._n_free -= take
        fresh = np.arange(self._next_row, self._next_row + n - take, dtype=np.int64)
        self._next_row += n - take
        self._grow(self._next_row)
        rows = np.concatenate([reused, fresh])
        if fresh.size and self._opt:
            # fresh rows come from uninitialised storage (see _grow); reused ones were
            # zeroed at eviction.
            lo, hi = int(fresh[0]), int(fresh[-1]) + 1
            for state in self._opt.values():
                state[lo:hi] = 0
        self._index.insert(new_ids, rows)
        self._live[rows] = True
        m = self._meta
        m["row_id"][rows] = new_ids
        m["row_version"][rows] = version
        m["last_seen"][rows] = self._now_ms
        m["last_tick"][rows] = self._tick
        m["count"][rows] = 0
        if self._numba:  # write the start values in place
            K.init_rows(new_ids, rows, cfg.seed, float(cfg.init_std), self.weight.numpy())
        else:
            init = np.empty((n, cfg.dim), dtype=np.float32)
            K.init_rows(new_ids, np.arange(n), cfg.seed, float(cfg.init_std), init)
            self._write_rows(rows, torch.from_numpy(init))
        return rows

    def _rows_t(self, rows: np.ndarray) -> Tensor:
        return torch.from_numpy(rows).to(self.device, self._index_dtype)

    def _write_rows(self, rows: np.ndarray, values: Tensor) -> None:
        if self._on_cpu:
            self.weight.index_copy_(0, torch.from_numpy(rows), values)
        else:
            self.weight.index_copy_(0, self._rows_t(rows), values.to(self.device))

    # ------------------------------------------------------------------------------------
    # eviction
    # ------------------------------------------------------------------------------------
    def _evict_rows(self, rows: np.ndarray) -> int:
        """Free `rows` (live): drop their ids, zero rows and optimizer state, log tombstones."""
        if rows.size == 0:
            return 0
        version = self._bump()
        ids = self._meta["row_id"][rows]
        self._index.delete(ids)
        self._tombstones.insert(ids, np.full(ids.shape[0], version, dtype=np.int64))
        self._live[rows] = False
        self._meta["last_seen"][rows] = _NEVER
        self._meta["count"][rows] = 0
        rt = self._rows_t(rows)
        self.weight.index_fill_(0, rt, 0.0)
        for state in self._opt.values():
            state.index_fill_(0, rt, 0)
        need = self._n_free + rows.shape[0]
        if need > self._free.shape[0]:
            self._free = np.concatenate([self._free, np.empty(max(need, 1024), np.int64)])
        self._free[self._n_free : need] = rows
        self._n_free = need
        self._evict_epoch += 1
        return int(rows.shape[0])

    def _evict_for_room(self, k: int, protect: np.ndarray | None) -> int:
        """Evict the k least valuable live rows (LRU or LFU), never one used by this batch."""
        cand = np.flatnonzero(self._live)
        if protect is not None and protect.size:
            keep = np.ones(self._capacity, dtype=bool)
            keep[protect] = False
            cand = cand[keep[cand]]
        if cand.size == 0:
            return 0
        m = self._meta
        if self.config.eviction == EvictionPolicy.LFU:
            order = np.lexsort((cand, m["last_tick"][cand], m["count"][cand]))
        else:
            order = np.lexsort((cand, m["last_tick"][cand]))
        return self._evict_rows(cand[order[:k]])

    def expire(self) -> int:
        """Evict every id unseen for longer than ttl_ms before the current event time.

        Returns the number of ids evicted.
        """
        ttl = self.config.ttl_ms
        if ttl is None:
            return 0
        stale = self._live & (self._meta["last_seen"] < self._now_ms - ttl)
        return self._evict_rows(np.flatnonzero(stale))

    def evict(self, ids: Tensor | np.ndarray) -> int:
        """Evict these ids (absent ones are ignored); returns how many held a row."""
        rows = self._index.lookup(_ids_numpy(ids, self.config.name))
        return self._evict_rows(np.unique(rows[rows > 0]))

    # ------------------------------------------------------------------------------------
    # lookups
    # ------------------------------------------------------------------------------------
    def lookup(self, ids: Tensor | np.ndarray) -> Tensor:
        """Raw ids (N,) int64 on the host -> row numbers (N,) on the device (0 = default row).

        In training mode unknown ids go through admission and may get a row; in eval mode
        nothing is inserted or counted.
        """
        rows = self._resolve(_ids_numpy(ids, self.config.name))
        return self._rows_t(rows)

    def rows_of(self, ids: Tensor | np.ndarray) -> np.ndarray:
        """Rows of ids without admission or counting (-1 where absent), on the host."""
        return self._index.lookup(_ids_numpy(ids, self.config.name))

    def weights_of(self, ids: Tensor | np.ndarray) -> Tensor:
        """Current rows of ids (N, D) (zeros where absent); no admission, no gradient."""
        rows = np.maximum(self.rows_of(ids), 0)
        return self.weight.index_select(0, self._rows_t(rows)).clone()

    def assign(self, ids: Tensor | np.ndarray, values: Tensor) -> int:
        """Set the rows of ids (N,) to values (N, D). In training mode unknown ids are
        admitted first, as by a lookup; ids without a row are skipped. Returns the number
        of rows written."""
        rows = self._resolve(_ids_numpy(ids, self.config.name))  # 0: no row
        held = rows > 0
        self._write_rows(rows[held], values[torch.from_numpy(held)].to(torch.float32))
        self._meta["row_version"][rows[held]] = self._bump()
        return int(held.sum())

    def optimizer_state_of(self, ids: Tensor | np.ndarray) -> dict[str, Tensor]:
        rows = self._rows_t(np.maximum(self.rows_of(ids), 0))
        return {k: v.index_select(0, rows).clone() for k, v in self._opt.items()}

    def plan(self, ids: np.ndarray, segments: list[Segment]) -> LookupPlan:
        """Resolve ids (N,) once for several outputs; dedup rows for the backward.

        `segments` must partition [0, N) in order (each id feeds exactly one output).
        """
        rows = self._resolve(ids)
        n = rows.shape[0]
        self._gen += 1
        uniq = np.empty(n, dtype=np.int64)
        inverse = np.empty(n, dtype=np.int64)
        u = K.dedup_rows(rows, self._mark, np.int64(self._gen), self._pos, uniq, inverse)
        uniq = uniq[:u]
        rows_t = self._rows_t(rows)
        inverse_t = None if self._numba else self._rows_t(inverse)
        if not self._numba:
            for s in segments:
                if s.out_idx is not None:
                    s.out_idx_t = self._rows_t(s.out_idx)
                if s.scale is not None:
                    s.scale_t = torch.from_numpy(s.scale).to(self.device)
        return LookupPlan(
            rows=rows,
            uniq=uniq,
            inverse=inverse,
            rows_t=rows_t,
            inverse_t=inverse_t,
            uniq_ids=self._meta["row_id"][uniq],
            evict_epoch=self._evict_epoch,
            segments=segments,
        )

    def pool(self, plan: LookupPlan) -> list[Tensor]:
        """Outputs of a plan, no autograd: one (n_out, D) tensor per segment."""
        outs = []
        dim = self.config.dim
        for s in plan.segments:
            if self._numba and s.bag is not None and s.bag > 0:
                out_np = np.empty((s.n_out, dim), dtype=np.float32)
                K.pool_sum_fixed(self.weight.numpy(), plan.rows[s.start : s.stop], s.bag, out_np)
                out = torch.from_numpy(out_np)
            else:
                emb = self.weight.index_select(0, plan.rows_t[s.start : s.stop])  # (n, D)
                if s.bag is not None and s.bag > 0:
                    out = emb.view(s.n_out, s.bag, dim).sum(1)
                else:
                    idx = torch.from_numpy(s.out_idx) if self._numba else s.out_idx_t
                    assert idx is not None  # plan() sets it for indexed segments
                    out = emb.new_zeros(s.n_out, dim).index_add_(0, idx, emb)
            if s.scale is not None:
                scale = torch.from_numpy(s.scale) if self._numba else s.scale_t
                assert scale is not None
                out = out * scale.unsqueeze(1)
            outs.append(out)
        return outs

    def outputs(self, plan: LookupPlan, anchor: Tensor | None = None) -> list[Tensor]:
        """Outputs of a plan; differentiable (fused update in backward) when training,
        updates are enabled and grad mode is on."""
        if self.training and self.requires_update and torch.is_grad_enabled():
            if anchor is None:
                anchor = torch.zeros((), requires_grad=True)
            return list(_FusedLookup.apply(anchor, self, plan))  # type: ignore[no-untyped-call]
        with torch.no_grad():
            return self.pool(plan)

    def embed(self, ids: Tensor | np.ndarray) -> Tensor:
        """Rows of ids (N, D), differentiable: backward applies the fused optimizer."""
        arr = _ids_numpy(ids, self.config.name)
        n = arr.shape[0]
        plan = self.plan(arr, [Segment(0, n, n, bag=1)])
        return self.outputs(plan)[0]

    # ------------------------------------------------------------------------------------
    # fused backward
    # ------------------------------------------------------------------------------------
    def apply_gradients(self, plan: LookupPlan, grads: tuple[Tensor | None, ...]) -> None:
        """Sum the gradients of each touched row (duplicates added) and update those rows.

        Called from the autograd backward. Memory is O(U x D) for U unique rows; the dense
        (C, D) gradient of the table never exists.
        """
        if not self.requires_update or all(g is None for g in grads):
            return
        uniq = plan.uniq
        if plan.evict_epoch != self._evict_epoch:
            # Rows were evicted (and maybe reused) since the forward: update only rows that
            # still hold the id they held then.
            same = self._live[uniq] & (self._meta["row_id"][uniq] == plan.uniq_ids)
            uniq = np.where(same, uniq, 0)
        dim = self.config.dim
        if self._numba:
            if any(g is None for g in grads):
                # some outputs got no gradient: their first occurrences are skipped, so
                # start from zeros and only add
                gsum_np = np.zeros((uniq.shape[0], dim), dtype=np.float32)
                nxt = uniq.shape[0]
            else:
                gsum_np = np.empty((uniq.shape[0], dim), dtype=np.float32)
                nxt = 0
            for s, g in zip(plan.segments, grads, strict=True):
                if g is None:
                    continue
                g = g.detach()
                if s.scale is not None:
                    g = g * torch.from_numpy(s.scale).unsqueeze(1)
                # No .contiguous(): numba reads strided arrays, and the gradient of a sum()
                # is an expanded (stride 0) tensor that would otherwise be copied.
                g_np = g.to(torch.float32).numpy()
                inv = plan.inverse[s.start : s.stop]
                if s.bag is not None and s.bag > 0:
                    nxt = K.accum_grad_fixed(g_np, s.bag, inv, gsum_np, nxt)
                else:
                    assert s.out_idx is not None
                    ones = np.ones(s.n_out, dtype=np.float32)
                    nxt = K.accum_grad_indexed(g_np, s.out_idx, ones, inv, gsum_np, nxt)
            assert nxt == uniq.shape[0]
            self._update_cpu(uniq, gsum_np)
        else:
            gsum = torch.zeros(uniq.shape[0], dim, device=self.device)
            for s, g in zip(plan.segments, grads, strict=True):
                if g is None:
                    continue
                g = g.detach().to(torch.float32)
                if s.scale_t is not None:
                    g = g * s.scale_t.unsqueeze(1)
                if s.bag is not None and s.bag > 0:
                    per_id = g.repeat_interleave(s.bag, dim=0)
                else:
                    assert s.out_idx_t is not None
                    per_id = g.index_select(0, s.out_idx_t)
                assert plan.inverse_t is not None
                gsum.index_add_(0, plan.inverse_t[s.start : s.stop], per_id)
            self._update_torch(uniq, gsum)
        version = self._bump()
        self._meta["row_version"][uniq[uniq > 0]] = version

    def _update_cpu(self, uniq: np.ndarray, gsum: np.ndarray) -> None:
        cfg = self.config
        w = self.weight.numpy()
        if cfg.optimizer == OptimizerType.SGD:
            K.sgd_update(w, uniq, gsum, cfg.lr)
        elif cfg.optimizer == OptimizerType.ROWWISE_ADAGRAD:
            K.rowwise_adagrad_update(w, self._opt["acc"].numpy(), uniq, gsum, cfg.lr, cfg.eps)
        else:
            o = self._opt
            K.adam_update(
                w,
                o["m"].numpy(),
                o["v"].numpy(),
                o["steps"].numpy(),
                uniq,
                gsum,
                cfg.lr,
                cfg.beta1,
                cfg.beta2,
                cfg.eps,
            )

    def _update_torch(self, uniq: np.ndarray, gsum: Tensor) -> None:
        """The same updates with index_select / index_copy_ (any device)."""
        keep = uniq > 0
        if not keep.all():
            gsum = gsum[torch.from_numpy(keep).to(self.device)]
            uniq = uniq[keep]
        if uniq.size == 0:
            return
        cfg = self.config
        rows = self._rows_t(uniq)
        w = self.weight.index_select(0, rows)
        if cfg.optimizer == OptimizerType.SGD:
            w.sub_(gsum, alpha=cfg.lr)
        elif cfg.optimizer == OptimizerType.ROWWISE_ADAGRAD:
            acc = self._opt["acc"].index_select(0, rows) + gsum.pow(2).mean(1)
            self._opt["acc"].index_copy_(0, rows, acc)
            w.sub_(cfg.lr * gsum / (acc.sqrt() + cfg.eps).unsqueeze(1))
        else:
            o = self._opt
            t = o["steps"].index_select(0, rows) + 1
            o["steps"].index_copy_(0, rows, t)
            tf = t.to(torch.float64)
            c1 = (1.0 - cfg.beta1**tf).to(torch.float32).unsqueeze(1)
            c2 = (1.0 - cfg.beta2**tf).sqrt().to(torch.float32).unsqueeze(1)
            m = o["m"].index_select(0, rows).mul_(cfg.beta1).add_(gsum, alpha=1 - cfg.beta1)
            v = o["v"].index_select(0, rows).mul_(cfg.beta2)
            v.addcmul_(gsum, gsum, value=1 - cfg.beta2)
            o["m"].index_copy_(0, rows, m)
            o["v"].index_copy_(0, rows, v)
            w.sub_(cfg.lr * (c2 / c1) * m / (v.sqrt() + cfg.eps * c2))
        self.weight.index_copy_(0, rows, w)

    # ------------------------------------------------------------------------------------
    # deltas
    # ------------------------------------------------------------------------------------
    def delta_tensors(
        self, since_version: int, with_optimizer: bool = True
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Rows changed and ids evicted after `since_version` (see export_delta)."""
        hi = self._next_row
        changed = np.flatnonzero(self._live[:hi] & (self._meta["row_version"][:hi] > since_version))
        t_ids, t_ver = self._tombstones.items()
        rt = self._rows_t(changed)
        tensors = {
            "ids": torch.from_numpy(self._meta["row_id"][changed].copy()),
            "weight": self.weight.index_select(0, rt).cpu(),
            "evicted": torch.from_numpy(t_ids[t_ver > since_version].copy()),
        }
        if with_optimizer:
            for name, state in self._opt.items():
                tensors[f"opt.{name}"] = state.index_select(0, rt).cpu()
        meta = {
            "format": DELTA_FORMAT,
            "table": self.config.name,
            "dim": self.config.dim,
            "optimizer": OptimizerType(self.config.optimizer).value,
            "since": int(since_version),
            "version": int(self.version),
        }
        return tensors, meta

    def export_delta(self, since_version: int, with_optimizer: bool = True) -> bytes:
        """safetensors bytes holding the rows touched (inserted or updated) and the ids
        evicted after `since_version`: tensors `ids` (M,), `weight` (M, D), `evicted` (E,),
        and `opt.*` (optimizer state) unless with_optimizer is False. Apply with apply_delta."""
        tensors, meta = self.delta_tensors(since_version, with_optimizer)
        return st_save(tensors, metadata={"meta": json.dumps(meta)})

    def forget_evictions(self, up_to_version: int) -> int:
        """Drop the eviction log up to a version every consumer has synced past.

        The log (id -> version of its eviction) is what lets export_delta tell a server to
        drop an id; it holds one entry per evicted id and is only trimmed by this call.
        Returns the entries dropped.
        """
        ids, versions = self._tombstones.items()
        old = ids[versions <= up_to_version]
        self._tombstones.delete(old)
        return int(old.size)

    def apply_delta(self, data: bytes) -> int:
        """Apply another table's export_delta: evictions first, then upserts of rows.

        The rows of the delta's ids become bit-identical to the exporter's. max_rows is not
        enforced here (the exporter's evictions arrive in the delta). Returns rows written.
        """
        tensors, meta = _load_blob(data, f"delta for table {self.config.name!r}", DELTA_FORMAT)
        return self.apply_delta_tensors(tensors, meta)

    def apply_delta_tensors(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> int:
        name = self.config.name
        if meta.get("table") != name or meta.get("dim") != self.config.dim:
            raise ConfigError(
                f"embedding table {name!r} (dim {self.config.dim}): delta is for table "
                f"{meta.get('table')!r} (dim {meta.get('dim')})"
            )
        evicted = tensors["evicted"].numpy()
        if evicted.size:
            self.evict(evicted)
        ids = tensors["ids"].numpy()
        if ids.size == 0:
            return 0
        rows = self._index.lookup(ids)
        absent = rows < 0
        if absent.any():
            saved, self.config.max_rows = self.config.max_rows, None
            try:
                rows[absent] = self._insert(ids[absent])
            finally:
                self.config.max_rows = saved
        version = self._bump()
        self._meta["row_version"][rows] = version
        self._write_rows(rows, tensors["weight"])
        rt = self._rows_t(rows)
        same_opt = meta.get("optimizer") == OptimizerType(self.config.optimizer).value
        for key, state in self._opt.items():
            if same_opt and f"opt.{key}" in tensors:
                state.index_copy_(0, rt, tensors[f"opt.{key}"].to(self.device))
        return int(ids.size)

    # ------------------------------------------------------------------------------------
    # state, checkpoint, restore
    # ------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Everything needed to resume bit-identically: (tensors on cpu, JSON metadata)."""
        hi = self._next_row
        tensors: dict[str, Tensor] = {"weight": self.weight[:hi].cpu().clone()}
        for name, st in self._opt.items():
            tensors[f"opt.{name}"] = st[:hi].cpu().clone()
        for name in _HOST_META:
            tensors[f"meta.{name}"] = torch.from_numpy(self._meta[name][:hi].copy())
        tensors["live"] = torch.from_numpy(self._live[:hi].astype(np.uint8))
        tensors["free"] = torch.from_numpy(self._free[: self._n_free].copy())
        t_ids, t_ver = self._tombstones.items()
        tensors["tomb_ids"] = torch.from_numpy(t_ids)
        tensors["tomb_versions"] = torch.from_numpy(t_ver)
        if self._sketch is not None:
            tensors["sketch"] = torch.from_numpy(self._sketch.copy())
        meta = {
            "format": STATE_FORMAT,
            "config": self.config.to_dict(),
            "version": self.version,
            "clock": self.clock.value,
            "next_row": hi,
            "now_ms": self._now_ms,
            "tick": self._tick,
            "draws": self._draws,
            "evict_epoch": self._evict_epoch,
        }
        return tensors, meta

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Replace this table's content by a `state()`; the config must describe the same
        table (name, dim, optimizer)."""
        where = f"embedding table {self.config.name!r}"
        if meta.get("format") != STATE_FORMAT:
            raise IntegrityError(
                f"{where}: state format {meta.get('format')!r}, expected {STATE_FORMAT}"
            )
        saved = EmbeddingTableConfig.from_dict(dict(meta["config"]))
        for field in ("name", "dim", "optimizer"):
            if getattr(saved, field) != getattr(self.config, field):
                raise ConfigError(
                    f"{where}: state has {field}={getattr(saved, field)!r}, "
                    f"this table has {getattr(self.config, field)!r}"
                )
        try:
            self._load_state(tensors, meta)
        except (KeyError, RuntimeError, ValueError, IndexError) as e:
            raise IntegrityError(
                f"{where}: inconsistent state ({e.__class__.__name__}: {e})"
            ) from e

    def _load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        hi = int(meta["next_row"])
        self._reset(capacity=hi)
        self._next_row = hi
        self.weight[:hi] = tensors["weight"].to(self.device)
        for name, st in self._opt.items():
            st[:hi] = tensors[f"opt.{name}"].to(self.device)
        for name in _HOST_META:
            self._meta[name][:hi] = tensors[f"meta.{name}"].numpy()
        self._live[:hi] = tensors["live"].numpy().astype(bool)
        free = tensors["free"].numpy().astype(np.int64)
        self._free = free.copy()
        self._n_free = free.shape[0]
        rows = np.flatnonzero(self._live[:hi])
        self._index.insert(self._meta["row_id"][rows], rows)
        if len(self._index) != rows.shape[0]:
            raise ValueError("two live rows hold the same id")
        self._tombstones.insert(tensors["tomb_ids"].numpy(), tensors["tomb_versions"].numpy())
        if self._sketch is not None:
            self._sketch[:] = tensors["sketch"].numpy()
        self.version = int(meta["version"])
        self.clock.value = max(self.clock.value, int(meta["clock"]))
        self._now_ms = int(meta["now_ms"])
        self._tick = int(meta["tick"])
        self._draws = int(meta["draws"])
        self._evict_epoch = int(meta["evict_epoch"])

    def state_bytes(self) -> bytes:
        tensors, meta = self.state()
        return st_save(tensors, metadata={"meta": json.dumps(meta)})

    def load_state_bytes(self, data: bytes) -> None:
        tensors, meta = _load_blob(data, f"state of table {self.config.name!r}", STATE_FORMAT)
        self.load_state(tensors, meta)

    def checkpoint(self, path: str | Path) -> Path:
        """Write a model directory (manifest with sha256 + `<name>.safetensors`) atomically."""
        name = f"{self.config.name}.safetensors"
        write_model_dir(
            Path(path),
            {name: self.state_bytes()},
            kind="embedding_table",
            config=self.config.to_dict(),
            version=max(self.version, 1),
        )
        return Path(path)

    def restore(self, path: str | Path) -> None:
        """Load a checkpoint() directory; IntegrityError if a file is truncated or corrupted."""
        path = Path(path)
        manifest = read_manifest(path)
        name = f"{self.config.name}.safetensors"
        try:
            manifest.file(name)
        except KeyError:
            raise IntegrityError(f"{path}: no {name} in the manifest") from None
        self.load_state_bytes(read_file(path, manifest, name))

    # ------------------------------------------------------------------------------------
    # memory
    # ------------------------------------------------------------------------------------
    def bytes_per_row(self) -> dict[str, float]:
        """Bytes one row in use costs: device (row + optimizer state) and host (metadata +
        its share of the hash index at the current load)."""
        device = self.config.dim * 4 + sum(
            int(np.prod(shape or (1,))) * torch.empty(0, dtype=dt).element_size()
            for shape, dt in self._opt_shapes().values()
        )
        host_meta = 8 * len(_META_COLS) + 1  # packed metadata record, live flag
        index = self._index.nbytes / max(1, self.num_rows)
        return {
            "device": float(device),
            "host": float(host_meta + index),
            "total": float(device + host_meta + index),
        }

    def memory_report(self) -> dict[str, Any]:
        """Rows in use, capacity, and bytes held by each part (allocated, not just used)."""
        opt_bytes = sum(t.numel() * t.element_size() for t in self._opt.values())
        host = self._rowmeta.nbytes + self._live.nbytes + self._free.nbytes
        report: dict[str, Any] = {
            "table": self.config.name,
            "rows_in_use": self.num_rows,
            "capacity_rows": self._capacity,
            "weight_bytes": self.weight.numel() * 4,
            "optimizer_bytes": opt_bytes,
            "index_bytes": self._index.nbytes + self._tombstones.nbytes,
            "host_meta_bytes": host,
            "sketch_bytes": 0 if self._sketch is None else self._sketch.nbytes,
            "bytes_per_row": self.bytes_per_row(),
        }
        report["total_bytes"] = sum(
            int(report[k])
            for k in (
                "weight_bytes",
                "optimizer_bytes",
                "index_bytes",
                "host_meta_bytes",
                "sketch_bytes",
            )
        )
        return report


def _load_blob(data: bytes, what: str, fmt: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """safetensors bytes -> (tensors, metadata); IntegrityError when unreadable."""
    try:
        tensors = st_load(data)
        meta = json.loads(_metadata(data)["meta"])
    except (SafetensorError, KeyError, json.JSONDecodeError, ValueError, TypeError) as e:
        raise IntegrityError(f"{what}: not a readable safetensors blob ({e})") from e
    if meta.get("format") != fmt:
        raise IntegrityError(f"{what}: format {meta.get('format')!r}, expected {fmt}")
    return tensors, meta


def _metadata(data: bytes) -> dict[str, str]:
    """The __metadata__ of a safetensors blob (header: 8-byte little-endian length + JSON)."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    return dict(header.get("__metadata__") or {})


class _FusedLookup(torch.autograd.Function):
    """Forward: pooled rows of one table. Backward: the fused row-wise optimizer step on the
    touched rows (no gradient tensor for the table is returned or ever built).

    `anchor` is a 0-d tensor that requires grad, so autograd records this node; it gets no
    gradient. Each backward pass through a forward applies one update.
    """

    @staticmethod
    def forward(
        ctx: Any, anchor: Tensor, table: DynamicEmbedding, plan: LookupPlan
    ) -> tuple[Tensor, ...]:
        ctx.table = table
        ctx.plan = plan
        ctx.set_materialize_grads(False)
        return tuple(table.pool(plan))

    @staticmethod
    def backward(ctx: Any, *grads: Tensor | None) -> tuple[None, None, None]:
        ctx.table.apply_gradients(ctx.plan, grads)
        return None, None, None
