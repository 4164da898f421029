"""`IdIndex`: a host-side hash map from raw int64 ids to int64 row numbers.

Open addressing with linear probing over interleaved (key, value) slots, batch operations
compiled with numba. Every id maps to at most one row and the map never hashes two ids onto
one row: collisions of the hash only cost an extra probe, never a shared row.
"""

from __future__ import annotations

import numpy as np

from reelrec.embedding import _kernels as K


def _as_ids(ids: object, what: str = "ids") -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"IdIndex: {what} must be 1-D, got shape {arr.shape}")
    if arr.dtype != np.int64:
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"IdIndex: {what} must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    return np.ascontiguousarray(arr)


class IdIndex:
    """int64 id -> int64 row, vectorised over batches.

    Args:
        capacity: initial number of slots (rounded up to a power of two).
        max_load: slots in use (live + deleted) above this fraction trigger a rehash into
            twice the slots; 0.7 keeps linear probing to ~2 probes per lookup.

    Example::

        index = IdIndex()
        index.insert(np.array([10, 99]), np.array([1, 2]))
        index.lookup(np.array([99, 5]))  # array([ 2, -1])
    """

    def __init__(self, capacity: int = 1024, max_load: float = 0.7) -> None:
        if not 0.1 <= max_load <= 0.9:
            raise ValueError(f"IdIndex: max_load={max_load}, expected 0.1 .. 0.9")
        self.max_load = max_load
        self._alloc(max(16, 1 << int(np.ceil(np.log2(max(capacity, 1))))))

    def _alloc(self, capacity: int) -> None:
        self._slots = np.full(2 * capacity, K.EMPTY, dtype=np.int64)
        self._mask = np.int64(capacity - 1)
        self._size = 0
        self._tombs = 0

    @property
    def capacity(self) -> int:
        return int(self._mask) + 1

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return int(self._slots.nbytes)

    def lookup(self, ids: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Rows of `ids` (N,) -> (N,) int64, -1 where an id is absent."""
        ids = _as_ids(ids)
        if out is None:
            out = np.empty(ids.shape[0], dtype=np.int64)
        K.hm_lookup(self._slots, self._mask, ids, out)
        return out

    def insert(self, ids: np.ndarray, rows: np.ndarray) -> None:
        """Set ids[i] -> rows[i] (overwriting an existing mapping). rows must be >= 0."""
        ids = _as_ids(ids)
        rows = _as_ids(rows, "rows")
        if ids.shape != rows.shape:
            raise ValueError(f"IdIndex.insert: {ids.shape[0]} ids but {rows.shape[0]} rows")
        if rows.size and rows.min() < 0:
            raise ValueError("IdIndex.insert: rows must be >= 0")
        self._reserve(ids.shape[0])
        new, reused = K.hm_insert(self._slots, self._mask, ids, rows)
        self._size += int(new)
        self._tombs -= int(reused)

    def delete(self, ids: np.ndarray) -> np.ndarray:
        """Remove ids; returns the row each had, -1 where absent."""
        ids = _as_ids(ids)
        out = np.empty(ids.shape[0], dtype=np.int64)
        removed = int(K.hm_delete(self._slots, self._mask, ids, out))
        self._size -= removed
        self._tombs += removed
        return out

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """All (ids, rows), sorted by row (then id)."""
        keys, vals = self._items()
        order = np.lexsort((keys, vals))
        return keys[order], vals[order]

    def _items(self) -> tuple[np.ndarray, np.ndarray]:
        keys = np.empty(self._size, dtype=np.int64)
        vals = np.empty(self._size, dtype=np.int64)
        n = K.hm_items(self._slots, keys, vals)
        assert n == self._size
        return keys, vals

    def clear(self) -> None:
        self._alloc(16)

    def _reserve(self, extra: int) -> None:
        """Rehash (dropping tombstones, doubling if needed) before `extra` inserts could
        push the load above max_load."""
        if self._size + self._tombs + extra <= self.max_load * self.capacity:
            return
        keys, vals = self._items()
        need = (self._size + extra) / self.max_load
        cap = self.capacity
        while cap < need:
            cap *= 2
        self._alloc(cap)
        if keys.size:
            new, _ = K.hm_insert(self._slots, self._mask, keys, vals)
            self._size = int(new)
