"""blend: weighted reciprocal-rank fusion of fitted retrievers."""

from __future__ import annotations

import numpy as np
import pytest

from reelrec.errors import ConfigError
from reelrec.models.api import UserContext
from reelrec.models.retrieval import blend


class Fixed:
    def __init__(self, name: str, order: list[int]) -> None:
        self.name = name
        self.order = np.array(order, dtype=np.int64)

    def retrieve_many(self, user_ids, histories, now_ms, k):  # type: ignore[no-untyped-def]
        out = np.full((len(user_ids), k), -1, dtype=np.int64)
        n = min(k, self.order.size)
        out[:, :n] = self.order[:n]
        return out


def test_fusion_by_hand() -> None:
    a, b = Fixed("a", [1, 2, 3]), Fixed("b", [3, 4])
    # offset 0: 1 -> 1/1, 2 -> 1/2, 3 -> 1/3 + 2/1, 4 -> 2/2
    mixed = blend([a, b], [1.0, 2.0], offset=0.0)
    assert mixed.retrieve(UserContext(1, 0), 4).tolist() == [3, 1, 4, 2]
    out = mixed.retrieve_many(np.array([1, 2]), [np.array([]), np.array([])], 0, 6)
    assert out.tolist() == [[3, 1, 4, 2, -1, -1]] * 2


def test_zero_weight_member_is_ignored() -> None:
    mixed = blend([Fixed("a", [1]), Fixed("popular", [2])])  # popular: default weight 0
    assert mixed.retrieve(UserContext(1, 0), 3).tolist() == [1]


def test_bad_weights_fails() -> None:
    with pytest.raises(ConfigError, match="weights"):
        blend([Fixed("a", [1])], [1.0, 2.0])
    with pytest.raises(ConfigError, match="weights"):
        blend([Fixed("a", [1])], [0.0])
