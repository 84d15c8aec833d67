"""hf_simo's classes registered with transformers' Auto classes and pipeline registry, once, when transformers'
Auto modules or pipelines are first imported (the hook `hf_simo/__init__.py` installs; see
`hf_simo.utils.import_hooks`).

So `import hf_simo` stays light (no torch, no transformers), and still
``import hf_simo; AutoModel.from_pretrained("org/nyuv2-merged")`` and
``import hf_simo; pipeline("simo-dense-prediction", model=...)`` work in either import order.
"""

from __future__ import annotations


# The transformers modules whose first import triggers the registration (what the Auto classes and `pipeline` live in).
TRIGGERS = (
    "transformers.models.auto.configuration_auto",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.image_processing_auto",
    "transformers.pipelines",
)

_registered = False


def register_with_transformers() -> None:
    """Register `SimoConfig`, `SimoModel` (AutoModel, and the depth-estimation / semantic-segmentation Auto classes,
    so single-task models run in transformers' own pipelines), the image processors and the
    ``simo-dense-prediction`` pipeline. Idempotent."""
    global _registered
    if _registered:
        return
    _registered = True
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoModel,
        AutoModelForDepthEstimation,
        AutoModelForSemanticSegmentation,
    )

    from .configuration_simo import SimoConfig
    from .dense_prediction_pipeline import register_pipeline
    from .image_processing_simo import PROCESSOR_CLASSES
    from .modeling_simo import SimoModel

    AutoConfig.register("simo", SimoConfig, exist_ok=True)
    AutoModel.register(SimoConfig, SimoModel, exist_ok=True)
    # single-task depth and segmentation models also run in transformers' own depth-estimation / image-segmentation
    # pipelines (their outputs carry `predicted_depth` / `logits`, the config `id2label`)
    AutoModelForDepthEstimation.register(SimoConfig, SimoModel, exist_ok=True)
    AutoModelForSemanticSegmentation.register(SimoConfig, SimoModel, exist_ok=True)
    AutoImageProcessor.register(SimoConfig, image_processor_classes=dict(PROCESSOR_CLASSES), exist_ok=True)
    register_pipeline()


__all__ = ["TRIGGERS", "register_with_transformers"]
