"""hf_simo: single-input multi-output (SIMO) model merging for dense prediction on DINOv2.

The public names below load on first use (PEP 562), so ``import hf_simo`` and ``hf-simo --help`` import neither torch
nor transformers. Importing the package still registers hf_simo with transformers: `SimoConfig`/`SimoModel` with
`AutoConfig`/`AutoModel`, the `SimoImageProcessor` with `AutoImageProcessor` and the ``simo-dense-prediction``
pipeline with `PIPELINE_REGISTRY`, as soon as transformers' Auto classes or pipelines are imported (before or after
hf_simo; `hf_simo.registration`), so `AutoModel.from_pretrained("org/nyuv2-merged")` and
`pipeline("simo-dense-prediction", model="org/nyuv2-merged")` work like any other model.
"""

import os
from typing import TYPE_CHECKING


# Before torch is first imported (the `hf-simo` command imports hf_simo first): idle OpenMP threads must not spin on
# few shared cores, where 2 torch threads were up to 5x slower than 1 (benchmarks/RESULTS.md); the recipes set the
# same. A value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


from .utils.lazy import lazy_exports
from .version import __version__


_EXPORTS = {
    "CheckpointError": "hf_simo.errors",
    "DenseRegressionOutput": "hf_simo.modeling_outputs",
    "ImageInputError": "hf_simo.errors",
    "SimoConfig": "hf_simo.configuration_simo",
    "SimoDensePredictionPipeline": "hf_simo.dense_prediction_pipeline",
    "SimoEncoding": "hf_simo.modeling_simo",
    "SimoError": "hf_simo.errors",
    "SimoImageProcessorPil": "hf_simo.image_processing_simo",
    "SimoModel": "hf_simo.modeling_simo",
    "SimoModelOutput": "hf_simo.modeling_simo",
    "SimoPreTrainedModel": "hf_simo.modeling_simo",
    "SurfaceNormalsOutput": "hf_simo.modeling_outputs",
    "TaskSpec": "hf_simo.configuration_simo",
    "TaskSpecError": "hf_simo.errors",
    "UnsafeCheckpointError": "hf_simo.errors",
    "default_feature_layers": "hf_simo.configuration_simo",
    "make_image_processor": "hf_simo.image_processing_simo",
    "normalize_images": "hf_simo.processing",
    "register_with_transformers": "hf_simo.registration",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for IDEs and type checkers; at run time the table above resolves the names
    from .configuration_simo import SimoConfig, TaskSpec, default_feature_layers
    from .dense_prediction_pipeline import SimoDensePredictionPipeline
    from .errors import CheckpointError, ImageInputError, SimoError, TaskSpecError, UnsafeCheckpointError
    from .image_processing_simo import SimoImageProcessorPil, make_image_processor
    from .modeling_outputs import DenseRegressionOutput, SurfaceNormalsOutput
    from .modeling_simo import SimoEncoding, SimoModel, SimoModelOutput, SimoPreTrainedModel
    from .processing import normalize_images
    from .registration import register_with_transformers


def _install_registration_hook() -> None:
    from .registration import TRIGGERS, register_with_transformers
    from .utils.import_hooks import call_after_import

    call_after_import(TRIGGERS, register_with_transformers, packages=("transformers", "hf_simo"))


_install_registration_hook()
