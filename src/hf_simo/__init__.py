"""hf_simo: single-input multi-output (SIMO) model merging for dense prediction on DINOv2.

Importing the package registers `SimoConfig`/`SimoModel` with transformers' `AutoConfig`/`AutoModel`, the
`SimoImageProcessor` with `AutoImageProcessor` and the `simo-dense-prediction` pipeline with `PIPELINE_REGISTRY`, so
`AutoModel.from_pretrained("org/nyuv2-merged")` and `pipeline("simo-dense-prediction", model="org/nyuv2-merged")`
work like any other model.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForDepthEstimation,
    AutoModelForSemanticSegmentation,
)

from .configuration_simo import SimoConfig, TaskSpec, TaskSpecError, default_feature_layers
from .dense_prediction_pipeline import SimoDensePredictionPipeline, register_pipeline
from .hub import CheckpointError, UnsafeCheckpointError
from .image_processing_simo import PROCESSOR_CLASSES, ImageInputError, SimoImageProcessorPil, make_image_processor
from .modeling_outputs import DenseRegressionOutput, SurfaceNormalsOutput
from .modeling_simo import SimoEncoding, SimoModel, SimoModelOutput, SimoPreTrainedModel
from .processing import normalize_images


__version__ = "0.1.0.dev0"

AutoConfig.register("simo", SimoConfig, exist_ok=True)
AutoModel.register(SimoConfig, SimoModel, exist_ok=True)
# single-task depth and segmentation models also run in transformers' own depth-estimation / image-segmentation
# pipelines (their outputs carry `predicted_depth` / `logits`, the config `id2label`)
AutoModelForDepthEstimation.register(SimoConfig, SimoModel, exist_ok=True)
AutoModelForSemanticSegmentation.register(SimoConfig, SimoModel, exist_ok=True)
AutoImageProcessor.register(SimoConfig, image_processor_classes=dict(PROCESSOR_CLASSES), exist_ok=True)
register_pipeline()

__all__ = [
    "CheckpointError",
    "DenseRegressionOutput",
    "ImageInputError",
    "SimoConfig",
    "SimoDensePredictionPipeline",
    "SimoEncoding",
    "SimoImageProcessorPil",
    "SimoModel",
    "SimoModelOutput",
    "SimoPreTrainedModel",
    "SurfaceNormalsOutput",
    "TaskSpec",
    "TaskSpecError",
    "UnsafeCheckpointError",
    "default_feature_layers",
    "make_image_processor",
    "normalize_images",
]
