from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelrec.embedding import IdIndex

# Small id pool so inserts, deletes and lookups hit the same ids; extremes included.
ID = st.sampled_from([0, 1, -1, 7, 2**63 - 1, -(2**63), 123456789, 42, 43, 1 << 40])
OPS = st.lists(
    st.tuples(st.sampled_from(["insert", "delete", "lookup"]), st.lists(ID, max_size=12)),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_matches_a_dict(ops: list[tuple[str, list[int]]]) -> None:
    index = IdIndex(capacity=16)
    model: dict[int, int] = {}
    next_row = 0
    for op, ids in ops:
        arr = np.array(ids, dtype=np.int64)
        if op == "insert":
            rows = np.arange(next_row, next_row + len(ids), dtype=np.int64)
            next_row += len(ids)
            index.insert(arr, rows)
            for i, r in zip(ids, rows.tolist(), strict=True):
                model[i] = r
        elif op == "delete":
            out = index.delete(arr)
            for i, r in zip(ids, out.tolist(), strict=True):
                assert r == model.pop(i, -1)
        else:
            assert index.lookup(arr).tolist() == [model.get(i, -1) for i in ids]
        assert len(index) == len(model)
    keys, vals = index.items()
    assert dict(zip(keys.tolist(), vals.tolist(), strict=True)) == model


def test_grows_and_survives_tombstones() -> None:
    rng = np.random.default_rng(0)
    ids = rng.choice(10**12, size=20_000, replace=False).astype(np.int64)
    index = IdIndex(capacity=16)
    index.insert(ids, np.arange(ids.size))
    assert index.capacity >= ids.size / index.max_load
    index.delete(ids[::2])
    index.insert(ids[::2] + 10**13, np.arange(0, ids.size, 2))  # reuses tombstones
    assert len(index) == ids.size
    assert (index.lookup(ids[1::2]) == np.arange(1, ids.size, 2)).all()
    assert (index.lookup(ids[::2]) == -1).all()
    assert (index.lookup(ids[::2] + 10**13) == np.arange(0, ids.size, 2)).all()


def test_bad_inputs_fail() -> None:
    index = IdIndex()
    with pytest.raises(ValueError, match="1-D"):
        index.lookup(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="2 ids but 1 rows"):
        index.insert(np.array([1, 2]), np.array([0]))
    with pytest.raises(ValueError, match=">= 0"):
        index.insert(np.array([1]), np.array([-5]))
    with pytest.raises(ValueError, match="integers"):
        index.lookup(np.array([1.5]))
    with pytest.raises(ValueError, match="max_load"):
        IdIndex(max_load=0.99)
