"""Dynamic embedding tables: collision-free id -> row maps that grow, admit, expire, learn
with fused row-wise optimizers, and ship deltas (DESIGN.md, part 3)."""

from reelrec.embedding.collection import EmbeddingCollection
from reelrec.embedding.config import EmbeddingTableConfig, EvictionPolicy, OptimizerType
from reelrec.embedding.index import IdIndex
from reelrec.embedding.table import DynamicEmbedding, VersionClock

__all__ = [
    "DynamicEmbedding",
    "EmbeddingCollection",
    "EmbeddingTableConfig",
    "EvictionPolicy",
    "IdIndex",
    "OptimizerType",
    "VersionClock",
]
