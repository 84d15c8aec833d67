"""The `simo-dense-prediction` transformers pipeline: every task of a `SimoModel` from one encoder pass per image.

Registered with transformers' `PIPELINE_REGISTRY` when hf_simo is imported (as SpanMarker registers its own), so

    import hf_simo
    from transformers import pipeline
    predict = pipeline("simo-dense-prediction", model="org/nyuv2-merged")
    predict("scene.jpg")                      # or a URL, a PIL image, an array; a list for a batch
    predict(images, tasks=["depth"], batch_size=4)

Each image gives a dict task -> what the matching transformers pipeline returns for that kind, at the image's own
size: segmentation, `image-segmentation`'s list of `{"score": None, "label", "mask"}` (one binary mask per class
present); depth and disparity, `depth-estimation`'s `{"predicted_depth", "depth"}` (the raw map in the model's units,
and an 8-bit image of it scaled to its range); surface normals `{"predicted_normals", "normals"}` (unit vectors, and
an RGB image of (n + 1) / 2); generic regression `{"predicted_values"}` (plus `"image"` for 1 or 3 channels).

Batching (`batch_size > 1`) stacks images, so the images of a batch must resize to one size (same aspect ratio);
others are refused with a message, never padded (padding would change the predictions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from transformers import Pipeline
from transformers.pipelines.base import no_collate_fn, pad_collate_fn
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

from .configuration_simo import TaskSpec
from .image_processing_simo import (
    ImageInputError,
    as_image_list,
    as_simo_image_processor,
    load_rgb_image,
    make_image_processor,
)
from .modeling_outputs import task_output


TASK_NAME = "simo-dense-prediction"
_SIZE_KEY = "target_size"


class SimoDensePredictionPipeline(Pipeline):
    """Dense predictions of every task (or `tasks=[...]`) of a `SimoModel` for each image; see the module docstring."""

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if getattr(self.model.config, "model_type", None) != "simo":
            raise TypeError(
                f"the {TASK_NAME} pipeline needs a SimoModel, got {type(self.model).__name__}; "
                "load a hf_simo model (config model_type 'simo')"
            )
        # folders saved before SimoImageProcessor hold a plain DPT processor: same settings, plus post-processing
        self.image_processor = as_simo_image_processor(self.image_processor) or make_image_processor(self.model.config)

    def __call__(self, inputs: Any = None, **kwargs: Any):
        """Predict for one image (a dict task -> result) or a batch (a list of them); see the module docstring.

        Args:
            inputs: a path, an http(s) URL, a PIL image, an (H, W[, C]) or (C, H, W) array/tensor, or a list (or
                (N, ...) array) of them. `images=` is accepted too.
            tasks: run only these tasks (default: all of the model's).
            timeout: seconds to wait for an image URL.
            batch_size: images per forward pass.
        """
        if "images" in kwargs:
            inputs = kwargs.pop("images")
        if inputs is None:
            raise ImageInputError(f"the {TASK_NAME} pipeline needs images: pipe(image) or pipe([image, ...])")
        batched = isinstance(inputs, (list, tuple)) or (
            isinstance(inputs, (np.ndarray, torch.Tensor)) and inputs.ndim == 4
        )
        images = as_image_list(inputs)
        results = super().__call__(images, **kwargs)
        return results if batched else results[0]

    def _sanitize_parameters(self, tasks=None, timeout=None, **kwargs):
        if kwargs:
            raise TypeError(f"the {TASK_NAME} pipeline got unexpected argument(s) {sorted(kwargs)}")
        forward = {}
        if tasks is not None:
            if isinstance(tasks, str):
                tasks = [tasks]
            unknown = [t for t in tasks if t not in self.model.config.tasks]
            if unknown or not tasks:
                raise KeyError(
                    f"unknown task(s) {unknown or tasks}; this model has tasks {self.model.config.task_names}"
                )
            forward["tasks"] = list(tasks)
        return ({"timeout": timeout} if timeout is not None else {}), forward, {}

    def preprocess(self, image, timeout=None):
        image = load_rgb_image(image, timeout=timeout)
        inputs = self.image_processor(images=image, return_tensors="pt")
        inputs = inputs.to(self.dtype)
        inputs[_SIZE_KEY] = (image.height, image.width)
        return inputs

    def _forward(self, model_inputs, tasks=None):
        target_size = model_inputs.pop(_SIZE_KEY)
        outputs = self.model(pixel_values=model_inputs["pixel_values"], tasks=tasks)
        # a flat dict of (B, ...) tensors, so the pipeline's iterator can split a batch into single images
        flat: dict[str, Any] = {f"task/{name}": value for name, value in outputs.predictions.items()}
        flat[_SIZE_KEY] = target_size
        return flat

    def postprocess(self, model_outputs):
        size = model_outputs[_SIZE_KEY]
        size = size[0] if isinstance(size, list) else size
        result = {}
        for key, prediction in model_outputs.items():
            if not key.startswith("task/"):
                continue
            name = key[len("task/") :]
            spec = self.model.config.get_task(name)
            output = task_output(spec.kind, prediction)
            value = self.image_processor.post_process_task(output, [size])[0].detach().cpu()
            result[name] = format_prediction(spec, value)
        return result

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        """transformers' iterator, with a collate that refuses images of different processed sizes in one batch."""
        dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        collate = no_collate_fn if batch_size == 1 else _same_size_collate(pad_collate_fn(None, self.image_processor))
        loader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=collate)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)


def _same_size_collate(collate):
    def check(items):
        shapes = sorted({tuple(item["pixel_values"].shape[-2:]) for item in items})
        if len(shapes) > 1:
            raise ImageInputError(
                f"images of one batch resize to different sizes {shapes}; use batch_size=1, or batch images of one "
                "aspect ratio"
            )
        return collate(items)

    return check


def format_prediction(spec: TaskSpec, value: torch.Tensor) -> Any:
    """One task's post-processed prediction for one image, in the matching transformers pipeline's format."""
    if spec.kind == "semantic_segmentation":
        names = spec.label_names()
        class_map = value.numpy()
        return [
            {
                "score": None,
                "label": names[int(label)],
                "mask": Image.fromarray(((class_map == label) * 255).astype(np.uint8), mode="L"),
            }
            for label in np.unique(class_map)
        ]
    if spec.kind in ("depth", "disparity"):
        return {"predicted_depth": value, "depth": _scaled_image(value[None])}
    if spec.kind == "surface_normals":
        rgb = ((value.clamp(-1, 1) + 1) / 2 * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return {"predicted_normals": value, "normals": Image.fromarray(rgb, mode="RGB")}
    out = {"predicted_values": value}
    if value.shape[0] in (1, 3):
        out["image"] = _scaled_image(value)
    return out


def _scaled_image(value: torch.Tensor) -> Image.Image:
    """(1|3, H, W) values -> an 8-bit L/RGB image scaled to their range (as transformers' depth pipeline does)."""
    array = value.float().numpy()
    low, high = float(array.min()), float(array.max())
    scaled = (array - low) / (high - low) if high > low else np.zeros_like(array)
    pixels = (scaled * 255).round().astype(np.uint8)
    if pixels.shape[0] == 1:
        return Image.fromarray(pixels[0], mode="L")
    return Image.fromarray(np.moveaxis(pixels, 0, -1), mode="RGB")


def register_pipeline() -> None:
    """Make `pipeline("simo-dense-prediction", model=...)` work (called when hf_simo is imported)."""
    from transformers import AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    if TASK_NAME not in PIPELINE_REGISTRY.supported_tasks:
        PIPELINE_REGISTRY.register_pipeline(
            TASK_NAME, pipeline_class=SimoDensePredictionPipeline, pt_model=AutoModel, type="image"
        )


__all__ = ["TASK_NAME", "SimoDensePredictionPipeline", "format_prediction", "register_pipeline"]
