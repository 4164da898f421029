"""Leakage-free feature building for ranking and retrieval."""

from reelrec.features.builder import (
    RANK_TASKS,
    WATCH_TASK,
    FeatureBuilder,
    FeatureConfig,
    FeatureFrame,
)
from reelrec.features.history import CausalFeatures, CausalState, ServingState, causal_features

__all__ = [
    "RANK_TASKS",
    "WATCH_TASK",
    "CausalFeatures",
    "CausalState",
    "FeatureBuilder",
    "FeatureConfig",
    "FeatureFrame",
    "ServingState",
    "causal_features",
]
