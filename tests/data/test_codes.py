from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from reelrec.data.codes import (
    MISSING_CODE,
    int_codes,
    log2_bucket,
    stable_code,
    stable_codes,
    tag_lists,
)


@given(st.lists(st.one_of(st.none(), st.text(max_size=8)), max_size=30))
def test_stable_codes_match_per_value_and_ignore_order(values: list[str | None]) -> None:
    codes = stable_codes(pa.array(values, pa.string())).to_pylist()
    expected = [MISSING_CODE if not v else stable_code(v) for v in values]
    assert codes == expected
    assert stable_codes(pa.array(values[::-1], pa.string())).to_pylist() == expected[::-1]
    assert all(c == MISSING_CODE or c >= 0 for c in codes)


def test_stable_code_is_fixed_across_versions() -> None:
    # a code must never change between releases: models store embeddings keyed by it
    import hashlib

    digest = hashlib.blake2b(b"NORMAL", digest_size=8).digest()
    assert stable_code("NORMAL") == int.from_bytes(digest, "little") & ((1 << 63) - 1)
    assert stable_code("NORMAL") != stable_code("AD")


def test_tag_lists() -> None:
    tags = tag_lists(pa.array(["39", "2,7", "", None, " 5 , 6 ", "Comedy|Drama", "4,x"]))
    assert tags.to_pylist() == [
        [39], [2, 7], [], [], [5, 6],
        [stable_code("Comedy"), stable_code("Drama")], [4, stable_code("x")],
    ]  # fmt: skip
    assert tags.type == pa.list_(pa.int64())


@given(st.lists(st.lists(st.integers(0, 10**12), max_size=4), max_size=20))
def test_tag_lists_round_trip_ints(lists: list[list[int]]) -> None:
    text = pa.array([",".join(map(str, x)) for x in lists], pa.string())
    assert tag_lists(text).to_pylist() == lists


def test_log2_bucket_and_int_codes() -> None:
    counts = pa.array([0, 1, 2, 3, 6, 7, 1_986_249, None, -5])
    expected = [0, 1, 1, 2, 2, 3, int(np.floor(np.log2(1_986_250))), MISSING_CODE, MISSING_CODE]
    assert log2_bucket(counts).to_pylist() == expected
    assert int_codes(pa.array([9.0, None, float("nan"), 4.0])).to_pylist() == [9, -1, -1, 4]
