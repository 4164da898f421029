"""Models: the multi-task ranker, retrievers, and loading a trained model directory."""

from reelrec.models.api import FeedModel, ItemCatalog, RankOutput, Retriever, UserContext
from reelrec.models.ranker import Ranker, RankerConfig, RankerOutput, ScoreFusion


def load_feed_model(path, device=None):  # type: ignore[no-untyped-def]
    """Load and verify a model directory written by `reelrec train` (see models/bundle.py)."""
    from reelrec.models.bundle import load_feed_model as _load

    return _load(path, device)


__all__ = [
    "FeedModel",
    "ItemCatalog",
    "RankOutput",
    "Ranker",
    "RankerConfig",
    "RankerOutput",
    "Retriever",
    "ScoreFusion",
    "UserContext",
    "load_feed_model",
]
