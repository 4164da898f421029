"""Stable integer codes for categorical values, and columnar parsing of id lists.

Why stable hashes rather than "order of first appearance": a code must mean the same thing in
the training run, in the evaluation run on other dates, and in the server, whatever files were
read and in whatever order. `stable_codes` hashes the UTF-8 bytes of each distinct string with
BLAKE2b (8-byte digest, masked to 63 bits so the code is a non-negative int64). Nulls (and
empty strings) map to MISSING_CODE.

Only the distinct values are hashed in Python (a dictionary encode first), so the cost is per
category, not per row.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MISSING_CODE = -1  # null / empty / unknown category in every extra int64 column
_MASK63 = (1 << 63) - 1


def stable_code(value: str) -> int:
    """The stable non-negative int64 code of one string (BLAKE2b-64, top bit cleared)."""
    digest = hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK63


def stable_codes(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Map a string column to stable int64 codes; null or "" -> MISSING_CODE.

    Args:
        values: string-like array of shape (N,) (any type is cast to string first).

    Returns:
        int64 array of shape (N,), without nulls.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        values = pc.cast(values, pa.string())
    encoded = pc.dictionary_encode(values)
    uniques = encoded.dictionary.to_pylist()  # distinct categories only
    table = np.array(
        [stable_code(u) if u else MISSING_CODE for u in uniques] or [MISSING_CODE], np.int64
    )
    idx = encoded.indices.to_numpy(zero_copy_only=False)
    valid = ~np.asarray(pc.is_null(encoded.indices).to_numpy(zero_copy_only=False), bool)
    out = np.full(len(values), MISSING_CODE, np.int64)
    out[valid] = table[idx[valid].astype(np.int64)]
    return pa.array(out, pa.int64())


def int_codes(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Numeric categorical column -> int64 (floats truncated); null or NaN -> MISSING_CODE."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_floating(values.type):
        values = pc.if_else(pc.is_nan(values), None, values)
        values = pc.cast(pc.trunc(values), pa.int64(), safe=False)
    elif not pa.types.is_int64(values.type):
        values = pc.cast(values, pa.int64())
    return pc.fill_null(values, MISSING_CODE)


def log2_bucket(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A count -> floor(log2(1 + count)): 0 -> 0, 1..2 -> 1, 3..6 -> 2, 7..14 -> 3, ...

    Negative or null counts -> MISSING_CODE. Keeps a heavy-tailed count (followers, days
    since registration) a small categorical that an embedding can learn.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    x = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    bad = ~np.isfinite(x) | (x < 0)
    out = np.floor(np.log2(1.0 + np.where(bad, 0.0, x))).astype(np.int64)
    out[bad] = MISSING_CODE
    return pa.array(out, pa.int64())


def _regroup(parts: pa.Array, values: pa.Array, keep: np.ndarray) -> pa.Array:
    """Rebuild list<int64> rows from the kept pieces of `parts` (a list<string> array).

    `values` holds one int64 per kept piece, in order; `keep` is a bool mask over all pieces.
    """
    n = len(parts)
    lengths = pc.list_value_length(parts).to_numpy(zero_copy_only=False).astype(np.int64)
    row_of_piece = np.repeat(np.arange(n), lengths)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(np.bincount(row_of_piece[keep], minlength=n), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=pa.list_(pa.int64()))


def tag_lists(values: pa.Array | pa.ChunkedArray, pattern: str = r"[,|]") -> pa.Array:
    """Parse tag strings into list<int64>: "3,17" -> [3, 17]; "Comedy|Drama" -> two codes.

    A piece that is an integer keeps its value (KuaiRand tag ids); any other non-empty piece
    becomes its stable code (MovieLens genres). Null or "" -> [].

    Args:
        values: string array of shape (N,).
        pattern: regular expression that separates pieces.

    Returns:
        list<int64> array of shape (N,), no nulls.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = pc.fill_null(pc.cast(values, pa.string()), "")
    parts = pc.split_pattern_regex(values, pattern)
    flat = pc.utf8_trim_whitespace(pc.list_flatten(parts))
    non_empty = pc.greater(pc.utf8_length(flat), 0)
    flat = pc.filter(flat, non_empty)
    is_int = pc.match_substring_regex(flat, r"^-?\d{1,18}$")
    ints = pc.cast(pc.if_else(is_int, flat, "0"), pa.int64())
    codes = pc.if_else(is_int, ints, stable_codes(flat)) if not pc.all(is_int).as_py() else ints
    return _regroup(parts, codes, non_empty.to_numpy(zero_copy_only=False))
