"""numba kernels for the host side of the dynamic tables (hash map, dedup, admission, init)
and the CPU fast path of the fused optimizers.

All kernels are compiled with `cache=True` (the first import in a fresh checkout compiles them
once, a few seconds; later processes load the cache). They are single-threaded and `nogil`:
the 2-core machines this runs on are shared with torch's intra-op threads.

Hash map layout: one int64 array `slots` of 2 * capacity entries, `slots[2h]` the key and
`slots[2h + 1]` the value, so a probe touches one cache line. Value EMPTY (-1) marks a free
slot, TOMB (-2) a deleted one. Linear probing over a power-of-two capacity; the key is mixed
with the murmur3/splitmix64 finaliser, so sequential ids spread evenly.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

EMPTY = -1
TOMB = -2
Int = int | np.int64  # scalar arguments: numba takes either
# Reassociation lets LLVM vectorise the row reductions (row-wise Adagrad's mean of g^2);
# NaN/inf semantics are kept (no "fast" flag set).
_FAST = {"reassoc", "contract", "nsz"}

_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S33 = np.uint64(33)
_S11 = np.uint64(11)


@njit(cache=True, inline="always")
def mix64(x: np.uint64) -> np.uint64:
    """murmur3 fmix64: a bijective 64-bit mixer."""
    x ^= x >> _S33
    x *= _M1
    x ^= x >> _S33
    x *= _M2
    x ^= x >> _S33
    return x


@njit(cache=True, inline="always")
def uniform3(seed: np.uint64, a: Int, b: Int) -> float:
    """Counter-based uniform in (0, 1) from (seed, a, b): no state to save but the seed."""
    x = mix64(seed ^ mix64(np.uint64(a) + _GOLDEN) ^ mix64(np.uint64(b) * _GOLDEN + _M1))
    return ((x >> _S11) + np.uint64(1)) * (1.0 / 9007199254740994.0)


# ---------------------------------------------------------------------------------------
# hash map
# ---------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def hm_lookup(slots: np.ndarray, mask: Int, ids: np.ndarray, out: np.ndarray) -> int:
    """out[i] = row of ids[i], or -1; returns the number of misses."""
    misses = 0
    for i in range(ids.shape[0]):
        k = ids[i]
        h = np.int64(mix64(np.uint64(k)) & np.uint64(mask))
        while True:
            v = slots[2 * h + 1]
            if v == EMPTY:
                out[i] = -1
                misses += 1
                break
            if v != TOMB and slots[2 * h] == k:
                out[i] = v
                break
            h = (h + 1) & mask
    return misses


@njit(cache=True, nogil=True)
def hm_insert(slots: np.ndarray, mask: Int, ids: np.ndarray, rows: np.ndarray) -> tuple[Any, ...]:
    """Upsert ids[i] -> rows[i]; returns (new keys, tombstones reused)."""
    new = 0
    reused = 0
    for i in range(ids.shape[0]):
        k = ids[i]
        h = np.int64(mix64(np.uint64(k)) & np.uint64(mask))
        tomb = -1
        while True:
            v = slots[2 * h + 1]
            if v == EMPTY:
                if tomb >= 0:
                    h = tomb  # type: ignore[assignment]
                    reused += 1
                slots[2 * h] = k
                slots[2 * h + 1] = rows[i]
                new += 1
                break
            if v == TOMB:
                if tomb < 0:
                    tomb = h  # type: ignore[assignment]
            elif slots[2 * h] == k:
                slots[2 * h + 1] = rows[i]
                break
            h = (h + 1) & mask
    return new, reused


@njit(cache=True, nogil=True)
def hm_delete(slots: np.ndarray, mask: Int, ids: np.ndarray, out: np.ndarray) -> int:
    """Remove ids; out[i] = the row it had, or -1. Returns the number removed."""
    removed = 0
    for i in range(ids.shape[0]):
        k = ids[i]
        h = np.int64(mix64(np.uint64(k)) & np.uint64(mask))
        out[i] = -1
        while True:
            v = slots[2 * h + 1]
            if v == EMPTY:
                break
            if v != TOMB and slots[2 * h] == k:
                out[i] = v
                slots[2 * h + 1] = TOMB
                removed += 1
                break
            h = (h + 1) & mask
    return removed


@njit(cache=True, nogil=True)
def hm_items(slots: np.ndarray, keys: np.ndarray, vals: np.ndarray) -> int:
    n = 0
    for h in range(slots.shape[0] // 2):
        v = slots[2 * h + 1]
        if v >= 0:
            keys[n] = slots[2 * h]
            vals[n] = v
            n += 1
    return n


# ---------------------------------------------------------------------------------------
# per-batch dedup and row metadata
# ---------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def dedup_rows(
    rows: np.ndarray,
    mark: np.ndarray,
    gen: Int,
    pos: np.ndarray,
    uniq: np.ndarray,
    inverse: np.ndarray,
) -> int:
    """Unique rows in first-occurrence order (O(N), no sort): rows[i] == uniq[inverse[i]].

    `mark`/`pos` are per-row scratch arrays; a row is "seen in this batch" when
    mark[row] == gen, so they never need clearing.
    """
    u = 0
    for i in range(rows.shape[0]):
        r = rows[i]
        if mark[r] != gen:
            mark[r] = gen
            pos[r] = u
            uniq[u] = r
            u += 1
        inverse[i] = pos[r]
    return u


@njit(cache=True, nogil=True)
def touch_rows(
    rows: np.ndarray,
    now_ms: Int,
    tick: Int,
    last_seen: np.ndarray,
    last_tick: np.ndarray,
    count: np.ndarray,
) -> None:
    """Training sighting of each occurrence: recency for TTL/LRU, frequency for LFU."""
    for i in range(rows.shape[0]):
        r = rows[i]
        if r > 0:
            if now_ms > last_seen[r]:
                last_seen[r] = now_ms
            last_tick[r] = tick
            count[r] += 1


@njit(cache=True, nogil=True)
def first_occurrence(ids: np.ndarray, scratch: np.ndarray, mask: Int) -> tuple[Any, ...]:
    """Distinct ids in first-occurrence order and their counts, via a scratch hash map."""
    n = ids.shape[0]
    uniq = np.empty(n, np.int64)
    counts = np.zeros(n, np.int64)
    u = 0
    for i in range(n):
        k = ids[i]
        h = np.int64(mix64(np.uint64(k)) & np.uint64(mask))
        while True:
            v = scratch[2 * h + 1]
            if v == EMPTY:
                scratch[2 * h] = k
                scratch[2 * h + 1] = u
                uniq[u] = k
                counts[u] = 1
                u += 1
                break
            if scratch[2 * h] == k:
                counts[v] += 1
                break
            h = (h + 1) & mask
    return uniq[:u], counts[:u]


# ---------------------------------------------------------------------------------------
# admission and init
# ---------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def sketch_add(sketch: np.ndarray, ids: np.ndarray, counts: np.ndarray, est: np.ndarray) -> None:
    """Count-min sketch with conservative update; est[i] = the new (over-)estimate.

    Counters saturate at int32 max instead of wrapping.
    """
    depth, width = sketch.shape
    wmask = np.uint64(width - 1)
    for i in range(ids.shape[0]):
        k = np.uint64(ids[i])
        cur = np.int64(2147483647)
        for d in range(depth):
            c = np.int64(sketch[d, np.int64(mix64(k ^ mix64(np.uint64(d + 1))) & wmask)])
            cur = min(cur, c)
        target = min(cur + counts[i], np.int64(2147483647))
        for d in range(depth):
            j = np.int64(mix64(k ^ mix64(np.uint64(d + 1))) & wmask)
            if sketch[d, j] < target:
                sketch[d, j] = target
        est[i] = target


@njit(cache=True, nogil=True)
def admit_draws(ids: np.ndarray, seed: Int, counter: Int, out: np.ndarray) -> None:
    s = mix64(np.uint64(seed) + _M2)
    for i in range(ids.shape[0]):
        out[i] = uniform3(s, ids[i], counter)


@njit(cache=True, nogil=True)
def init_rows(ids: np.ndarray, rows: np.ndarray, seed: Int, std: float, out: np.ndarray) -> None:
    """out[rows[i]] ~ uniform(-sqrt(3) std, sqrt(3) std) (so its std is `std`), float32, from a
    hash of (seed, ids[i], column pair): two values per 64-bit hash, no transcendental calls,
    so inserting a burst of new ids stays cheap."""
    s = mix64(np.uint64(seed))
    dim = out.shape[1]
    half = math.sqrt(3.0) * std
    scale = 2.0 * half / 4294967296.0
    lo32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    for i in range(ids.shape[0]):
        base = s ^ mix64(np.uint64(ids[i]) + _GOLDEN)
        r = rows[i]
        for j in range(0, dim, 2):
            x = mix64(base + np.uint64(j) * _GOLDEN)
            out[r, j] = np.float32((x & lo32) * scale - half)
            if j + 1 < dim:
                out[r, j + 1] = np.float32((x >> s32) * scale - half)


# ---------------------------------------------------------------------------------------
# CPU fast path: forward pooling and fused backward + update
# ---------------------------------------------------------------------------------------
@njit(cache=True, nogil=True, fastmath=_FAST)
def pool_sum_fixed(weight: np.ndarray, rows: np.ndarray, bag: Int, out: np.ndarray) -> None:
    """out[b] = sum of weight[rows[b*bag + l]] for l < bag (every bag has `bag` ids)."""
    dim = weight.shape[1]
    for b in range(out.shape[0]):
        for j in range(dim):
            out[b, j] = 0.0
        for t in range(b * bag, (b + 1) * bag):
            r = rows[t]
            for j in range(dim):
                out[b, j] += weight[r, j]


@njit(cache=True, nogil=True, fastmath=_FAST)
def accum_grad_fixed(
    grad: np.ndarray, bag: Int, inverse: np.ndarray, gsum: np.ndarray, nxt: Int
) -> Int:
    """gsum[inverse[t]] += grad[t // bag]: duplicate rows summed (fixed-length bags).

    Unique rows are numbered in first-occurrence order, so row u is first met when
    u == nxt: it is assigned then instead of added, and gsum needs no zero fill (pass
    nxt = len(gsum) for a zeroed gsum). Returns the new nxt.
    """
    dim = grad.shape[1]
    for t in range(inverse.shape[0]):
        u = inverse[t]
        b = t // bag
        if u == nxt:
            for j in range(dim):
                gsum[u, j] = grad[b, j]
            nxt += 1
        else:
            for j in range(dim):
                gsum[u, j] += grad[b, j]
    return nxt


@njit(cache=True, nogil=True, fastmath=_FAST)
def accum_grad_indexed(
    grad: np.ndarray,
    out_idx: np.ndarray,
    scale: np.ndarray,
    inverse: np.ndarray,
    gsum: np.ndarray,
    nxt: Int,
) -> Int:
    """gsum[inverse[t]] += scale[o] * grad[o] with o = out_idx[t] (ragged bags, mean, seq);
    first occurrences assigned as in accum_grad_fixed. Returns the new nxt."""
    dim = grad.shape[1]
    for t in range(inverse.shape[0]):
        u = inverse[t]
        o = out_idx[t]
        s = scale[o]
        if u == nxt:
            for j in range(dim):
                gsum[u, j] = grad[o, j] * s
            nxt += 1
        else:
            for j in range(dim):
                gsum[u, j] += grad[o, j] * s
    return nxt


@njit(cache=True, nogil=True, fastmath=_FAST)
def sgd_update(weight: np.ndarray, uniq: np.ndarray, gsum: np.ndarray, lr: float) -> None:
    lr32 = np.float32(lr)
    for u in range(uniq.shape[0]):
        r = uniq[u]
        if r <= 0:
            continue
        for j in range(weight.shape[1]):
            weight[r, j] -= lr32 * gsum[u, j]


@njit(cache=True, nogil=True, fastmath=_FAST)
def rowwise_adagrad_update(
    weight: np.ndarray, acc: np.ndarray, uniq: np.ndarray, gsum: np.ndarray, lr: float, eps: float
) -> None:
    """acc[r] += mean_j g[j]^2; w[r] -= lr * g / (sqrt(acc[r]) + eps)  (FBGEMM's row-wise)."""
    dim = weight.shape[1]
    for u in range(uniq.shape[0]):
        r = uniq[u]
        if r <= 0:
            continue
        sq = np.float32(0.0)
        for j in range(dim):
            sq += gsum[u, j] * gsum[u, j]
        a = acc[r] + sq / np.float32(dim)
        acc[r] = a
        step = np.float32(lr) / (np.float32(math.sqrt(a)) + np.float32(eps))
        for j in range(dim):
            weight[r, j] -= step * gsum[u, j]


@njit(cache=True, nogil=True, fastmath=_FAST)
def adam_update(
    weight: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    steps: np.ndarray,
    uniq: np.ndarray,
    gsum: np.ndarray,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
) -> None:
    """Lazy Adam: moments and bias correction per row, counted in the row's own steps."""
    b1 = np.float32(beta1)
    b2 = np.float32(beta2)
    # 1 - beta in float64 first: float32(1) - float32(0.999) is off by 1e-5 relative.
    ob1 = np.float32(1.0 - beta1)
    ob2 = np.float32(1.0 - beta2)
    for u in range(uniq.shape[0]):
        r = uniq[u]
        if r <= 0:
            continue
        t = steps[r] + 1
        steps[r] = t
        c1 = np.float32(1.0 - beta1**t)
        c2 = np.float32(math.sqrt(1.0 - beta2**t))
        step = np.float32(lr) * c2 / c1
        for j in range(weight.shape[1]):
            g = gsum[u, j]
            mj = b1 * m[r, j] + ob1 * g
            vj = b2 * v[r, j] + ob2 * g * g
            m[r, j] = mj
            v[r, j] = vj
            weight[r, j] -= step * mj / (np.float32(math.sqrt(vj)) + np.float32(eps) * c2)
