"""hf_simo: single-input multi-output (SIMO) model merging for dense prediction on DINOv2.

Importing the package registers `SimoConfig`/`SimoModel` with transformers' `AutoConfig`/`AutoModel`, so
`AutoModel.from_pretrained("org/nyuv2-merged")` works like any other model.
"""

import os


# Before torch is first imported (the `hf-simo` command imports hf_simo first): idle OpenMP threads must not spin on
# few shared cores, where 2 torch threads were up to 5x slower than 1 (benchmarks/RESULTS.md); the recipes set the
# same. A value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from transformers import AutoConfig, AutoModel  # noqa: E402

from .configuration_simo import SimoConfig, TaskSpec, TaskSpecError, default_feature_layers
from .hub import CheckpointError, UnsafeCheckpointError
from .modeling_simo import SimoEncoding, SimoModel, SimoModelOutput, SimoPreTrainedModel
from .processing import make_image_processor, normalize_images


__version__ = "0.1.0.dev0"

AutoConfig.register("simo", SimoConfig, exist_ok=True)
AutoModel.register(SimoConfig, SimoModel, exist_ok=True)

__all__ = [
    "CheckpointError",
    "SimoConfig",
    "SimoEncoding",
    "SimoModel",
    "SimoModelOutput",
    "SimoPreTrainedModel",
    "TaskSpec",
    "TaskSpecError",
    "UnsafeCheckpointError",
    "default_feature_layers",
    "make_image_processor",
    "normalize_images",
]
