from __future__ import annotations

import pytest

from reelrec.embedding import (
    EmbeddingCollection,
    EmbeddingTableConfig,
    EvictionPolicy,
    OptimizerType,
)
from reelrec.errors import ConfigError


def test_defaults_and_enums() -> None:
    cfg = EmbeddingTableConfig(name="video", dim=8, optimizer="adam", eviction="lfu")
    assert cfg.optimizer is OptimizerType.ADAM
    assert cfg.eviction is EvictionPolicy.LFU
    assert EmbeddingTableConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dim", 0),
        ("dim", -3),
        ("dim", 2.5),
        ("optimizer", "adadelta"),
        ("eviction", "random"),
        ("lr", 0.0),
        ("lr", float("nan")),
        ("eps", -1e-8),
        ("min_count", 0),
        ("admit_prob", 0.0),
        ("admit_prob", 1.5),
        ("ttl_ms", -1),
        ("max_rows", 0),
        ("init_std", -0.1),
        ("sketch_width", 1000),
        ("beta1", 1.0),
        ("chunk_rows", 0),
    ],
)
def test_bad_field_fails(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        EmbeddingTableConfig(**{"name": "video", "dim": 8, field: value})  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert "'video'" in str(info.value) and field in str(info.value)


def test_empty_name_fails() -> None:
    with pytest.raises(ConfigError, match="name"):
        EmbeddingTableConfig(name="", dim=8)


def test_unknown_config_key_fails() -> None:
    with pytest.raises(ConfigError, match="unknown config keys"):
        EmbeddingTableConfig.from_dict({"name": "t", "dim": 4, "dimm": 5})


def test_duplicate_table_name_fails() -> None:
    cfg = EmbeddingTableConfig(name="t", dim=4)
    with pytest.raises(ConfigError, match="duplicate"):
        EmbeddingCollection([cfg, cfg], {"f": "t"})


def test_feature_to_unknown_table_fails() -> None:
    with pytest.raises(ConfigError, match="'f'.*unknown table 'u'"):
        EmbeddingCollection([EmbeddingTableConfig(name="t", dim=4)], {"f": "u"})


def test_unknown_feature_and_pooling_fail() -> None:
    from reelrec.batch import KeyedJagged
    from tests.embedding.conftest import jagged

    ec = EmbeddingCollection([EmbeddingTableConfig(name="t", dim=4)], {"f": "t"})
    with pytest.raises(ConfigError, match="unknown feature 'g'"):
        ec(KeyedJagged({"g": jagged([[1]])}))
    with pytest.raises(ConfigError, match="pooling"):
        ec(KeyedJagged({"f": jagged([[1]])}), pooling="max")
    with pytest.raises(ConfigError, match="max_len"):
        ec.sequence("f", jagged([[1]]), 0)
