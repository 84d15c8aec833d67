"""Re-alignment after merging (paper section 5): retrain the heads on cached features, or train low-rank adapters
after each block jointly with the heads (PEFT), on the small multi-task validation set."""

from .heads import FeatureCache, HeadRealignmentResult, compute_feature_cache, encoder_fingerprint, realign_heads
from .representation import (
    adapter_parameters,
    block_lora_config,
    fold_adapters,
    load_realignment_adapter,
    prepare_representation_realignment,
    trainable_parameters,
)


__all__ = [
    "FeatureCache",
    "HeadRealignmentResult",
    "adapter_parameters",
    "block_lora_config",
    "compute_feature_cache",
    "encoder_fingerprint",
    "fold_adapters",
    "load_realignment_adapter",
    "prepare_representation_realignment",
    "realign_heads",
    "trainable_parameters",
]
