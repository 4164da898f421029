"""Leakage-free feature building for ranking and retrieval."""

from reelrec.features.builder import (
    RANK_TASKS,
    WATCH_TASK,
    CausalInputs,
    FeatureBuilder,
    FeatureConfig,
    FeatureFrame,
)
from reelrec.features.history import CausalFeatures, CausalState, ServingState, causal_features

__all__ = [
    "RANK_TASKS",
    "WATCH_TASK",
    "CausalFeatures",
    "CausalInputs",
    "CausalState",
    "FeatureBuilder",
    "FeatureConfig",
    "FeatureFrame",
    "ServingState",
    "causal_features",
]
