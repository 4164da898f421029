"""Configuration of one dynamic embedding table."""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from typing import Any

from reelrec.errors import ConfigError


class OptimizerType(enum.StrEnum):
    """The fused row-wise optimizer applied in the backward pass to the touched rows only."""

    SGD = "sgd"
    ROWWISE_ADAGRAD = "rowwise_adagrad"  # one accumulator per row, as in FBGEMM / TorchRec
    ADAM = "adam"  # per-row step count for bias correction (lazy Adam)


class EvictionPolicy(enum.StrEnum):
    """Which rows go first when a table reaches `max_rows`."""

    LRU = "lru"  # least recently looked up (by training lookup call)
    LFU = "lfu"  # fewest sightings (ties: least recently used)


@dataclass
class EmbeddingTableConfig:
    """One table: every admitted raw int64 id gets its own `dim`-wide row.

    Args:
        name: table name (unique within a collection; used in files and errors).
        dim: embedding width D.
        optimizer: fused row-wise optimizer ("sgd", "rowwise_adagrad", "adam").
        lr: learning rate of that optimizer.
        eps: the optimizer's epsilon (added to sqrt of the second moment).
        min_count: admission: an id gets a row once seen this many times (1 = first sighting).
            Sightings are counted in a count-min sketch of `sketch_depth` x `sketch_width`
            int32 counters, so counting memory is bounded (over-counts only, never under).
        admit_prob: admission: on each training batch an unadmitted id that passed
            `min_count` is admitted with this probability (1.0 = always; Monolith's filter).
        ttl_ms: an id not seen for longer than this (event time, see `set_time`) is evicted
            by `expire()`; None = never expires.
        max_rows: capacity limit; at the limit, inserting evicts by `eviction`. None = unbounded.
        eviction: "lru" or "lfu".
        init_std: new rows start uniform in [-sqrt(3) init_std, sqrt(3) init_std] (standard
            deviation init_std), drawn from a hash of (seed, id), so a row's start value
            depends only on its id, not on arrival order or on when it was inserted.
        seed: seed of the table's counter-based random numbers (init and admit_prob).
        beta1, beta2: Adam's moment decay rates (ignored by the other optimizers).
        sketch_width, sketch_depth: size of the admission count-min sketch (min_count > 1).
        chunk_rows: rows are allocated on the device in multiples of this.
    """

    name: str
    dim: int
    optimizer: OptimizerType | str = OptimizerType.ROWWISE_ADAGRAD
    lr: float = 0.01
    eps: float = 1e-8
    min_count: int = 1
    admit_prob: float = 1.0
    ttl_ms: int | None = None
    max_rows: int | None = None
    eviction: EvictionPolicy | str = EvictionPolicy.LRU
    init_std: float = 0.01
    seed: int = 0
    beta1: float = 0.9
    beta2: float = 0.999
    sketch_width: int = 1 << 18
    sketch_depth: int = 4
    chunk_rows: int = 4096

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ConfigError(
                f"embedding table {self.name!r}: name must be a non-empty string without '/'"
            )
        self.optimizer = self._enum(OptimizerType, self.optimizer, "optimizer")
        self.eviction = self._enum(EvictionPolicy, self.eviction, "eviction")
        self._check_int("dim", 1)
        self._check_int("min_count", 1)
        self._check_int("sketch_depth", 1)
        self._check_int("chunk_rows", 1)
        self._check_int("seed", 0)
        if self.ttl_ms is not None:
            self._check_int("ttl_ms", 0)
        if self.max_rows is not None:
            self._check_int("max_rows", 1)
        w = self.sketch_width
        if not isinstance(w, int) or isinstance(w, bool) or w < 1 or w & (w - 1):
            self._fail("sketch_width", w, "a power of two >= 1")
        self._check_float("lr", 0.0, None, low_open=True)
        self._check_float("eps", 0.0, None)
        self._check_float("init_std", 0.0, None)
        self._check_float("admit_prob", 0.0, 1.0, low_open=True)
        self._check_float("beta1", 0.0, 1.0, high_open=True)
        self._check_float("beta2", 0.0, 1.0, high_open=True)

    # -- validation helpers -------------------------------------------------------------
    def _fail(self, field: str, value: object, expected: str) -> None:
        raise ConfigError(f"embedding table {self.name!r}: {field}={value!r}, expected {expected}")

    def _enum(self, kind: type[enum.Enum], value: object, field: str) -> Any:
        try:
            return kind(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in kind)
            self._fail(field, value, f"one of {choices}")

    def _check_int(self, field: str, low: int) -> None:
        value = getattr(self, field)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            self._fail(field, value, f"an integer >= {low}")

    def _check_float(
        self,
        field: str,
        low: float,
        high: float | None,
        low_open: bool = False,
        high_open: bool = False,
    ) -> None:
        value = getattr(self, field)
        ok = (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
        if ok:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            lo = f"{'>' if low_open else '>='} {low}"
            hi = "" if high is None else f" and {'<' if high_open else '<='} {high}"
            self._fail(field, value, f"a finite number {lo}{hi}")

    # -- (de)serialisation --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["optimizer"] = OptimizerType(self.optimizer).value
        d["eviction"] = EvictionPolicy(self.eviction).value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmbeddingTableConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"embedding table {d.get('name')!r}: unknown config keys {unknown}")
        return cls(**d)
