"""The image processor saved with every model, and its tensor equivalent for training loops.

Models are saved with a `DPTImageProcessor` (no resize, no crop: dense tasks keep their geometry; ImageNet
normalisation, as DINOv2 was trained with), so `AutoImageProcessor.from_pretrained(repo)` prepares images for
`SimoModel.from_pretrained(repo)`. Datasets give float images in [0, 1]; `normalize_images` applies the same
normalisation to batched tensors without a per-sample Python loop.
"""

from __future__ import annotations

import torch
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.utils import is_torchvision_available


def make_image_processor(image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD):
    """A DPT image processor that only rescales and normalizes (the fast one when torchvision is installed)."""
    if is_torchvision_available():
        from transformers import DPTImageProcessor as processor_class
    else:  # the PIL implementation, without the fallback warning
        from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil as processor_class
    return processor_class(
        do_resize=False,
        do_pad=False,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(image_mean),
        image_std=list(image_std),
    )


def normalize_images(images: torch.Tensor, image_processor=None) -> torch.Tensor:
    """(B, 3, H, W) floats in [0, 1] -> model inputs, with the processor's mean and std."""
    mean = getattr(image_processor, "image_mean", None) or IMAGENET_DEFAULT_MEAN
    std = getattr(image_processor, "image_std", None) or IMAGENET_DEFAULT_STD
    mean = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - mean) / std


__all__ = ["make_image_processor", "normalize_images"]
