"""ItemCatalog: the direct lookup table agrees with the binary search; first tags."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from reelrec.models.api import ItemCatalog
from tests.eval.test_retrieval import items


def _binary_search(catalog: ItemCatalog, ids: np.ndarray) -> np.ndarray:
    """The reference: id -> first position by a sorted search, -1 when absent."""
    out = np.full(ids.size, -1, np.int64)
    for j, i in enumerate(ids.tolist()):
        hits = np.flatnonzero(catalog.item_id == i)
        if hits.size:
            out[j] = hits[0]
    return out


@pytest.mark.parametrize(
    "ids",
    [
        [5, 3, 9, 4, 3],  # small ids with a duplicate (its first position wins)
        [5_000_000_123, 5_000_000_007, 5_000_000_050],  # offset ids: a table over the range
        [1, 2**40, 7],  # sparse: falls back to the binary search
        [-4, 0, 11],  # negative ids
    ],
)
def test_positions_match_reference(ids: list[int]) -> None:
    catalog = ItemCatalog(items(ids))
    lo, hi = min(ids), max(ids)
    rng = np.random.default_rng(0)
    queries = np.concatenate([
        np.asarray(ids, np.int64), rng.integers(lo - 20, lo + 200, 300),
        [hi + 1, -(2**63), 2**63 - 1, 0, -1],
    ])  # fmt: skip
    np.testing.assert_array_equal(catalog.positions(queries), _binary_search(catalog, queries))
    assert (catalog._direct is not None) == (hi - lo < 2**20)


@pytest.mark.parametrize("sliced", [False, True])
def test_first_tag(sliced: bool) -> None:
    """-1 for an item without tags, else its first tag; also on a slice of a table, whose
    tag offsets do not start at 0."""
    table = items([10, 11, 12, 13, 14])
    tags = [[7, 3], [], [5], [], [9, 8, 2]]
    table = table.set_column(table.schema.get_field_index("tags"), "tags",
                             pa.array(tags, table.schema.field("tags").type))  # fmt: skip
    if sliced:
        table, tags = table.slice(1), tags[1:]
    catalog = ItemCatalog(table)
    pos = np.array([3, 0, 2, 1, 0])
    expected = [tags[p][0] if tags[p] else -1 for p in pos.tolist()]
    assert catalog.first_tag(pos).tolist() == expected
