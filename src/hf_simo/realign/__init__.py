"""Re-alignment after merging (paper section 5): retrain the heads on cached features, or train low-rank adapters
after each block jointly with the heads (PEFT), on the small multi-task validation set.

- `feature_cache`: the encoder features head re-alignment trains on; `heads`: head re-alignment;
  `representation`: adapters through PEFT, save/load/fold;
- `steps`: `realign(model, dataset, settings)`, the step shared by the job and the demo;
- `job`: `run_realign`, the job behind `hf-simo realign` / `recipes/realign.py`; `arguments`: `RealignArguments`.

Names load on first use (`hf_simo.utils.lazy`); the table below is the package's public API.
"""

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports


_EXPORTS = {
    "FeatureCache": "hf_simo.realign.feature_cache",
    "HeadRealignmentResult": "hf_simo.realign.heads",
    "RealignArguments": "hf_simo.realign.arguments",
    "RealignOutcome": "hf_simo.realign.job",
    "RealignmentRecord": "hf_simo.realign.steps",
    "RealignmentSettings": "hf_simo.realign.steps",
    "adapter_parameters": "hf_simo.realign.representation",
    "block_lora_config": "hf_simo.realign.representation",
    "compute_feature_cache": "hf_simo.realign.feature_cache",
    "encoder_fingerprint": "hf_simo.realign.feature_cache",
    "fold_adapters": "hf_simo.realign.representation",
    "load_realignment_adapter": "hf_simo.realign.representation",
    "prepare_representation_realignment": "hf_simo.realign.representation",
    "realign": "hf_simo.realign.steps",
    "realign_heads": "hf_simo.realign.heads",
    "run_realign": "hf_simo.realign.job",
    "split_heldout": "hf_simo.realign.steps",
    "trainable_parameters": "hf_simo.realign.representation",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for IDEs and type checkers; at run time the table above resolves the names
    from hf_simo.realign.arguments import RealignArguments
    from hf_simo.realign.feature_cache import FeatureCache, compute_feature_cache, encoder_fingerprint
    from hf_simo.realign.heads import HeadRealignmentResult, realign_heads
    from hf_simo.realign.job import RealignOutcome, run_realign
    from hf_simo.realign.representation import (
        adapter_parameters,
        block_lora_config,
        fold_adapters,
        load_realignment_adapter,
        prepare_representation_realignment,
        trainable_parameters,
    )
    from hf_simo.realign.steps import RealignmentRecord, RealignmentSettings, realign, split_heldout
