"""The tensor equivalent of the image processor's normalisation, for training loops.

Datasets give float images in [0, 1] at their training size; `normalize_images` applies the saved processor's mean
and std (ImageNet's, as DINOv2 was trained with) to batched tensors without a per-sample Python loop. The processor
itself (`SimoImageProcessor`, resizing and post-processing) lives in `hf_simo.image_processing_simo`.
"""

from __future__ import annotations

import torch
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD


def normalize_images(images: torch.Tensor, image_processor=None) -> torch.Tensor:
    """(B, 3, H, W) floats in [0, 1] -> model inputs, with the processor's mean and std."""
    mean = getattr(image_processor, "image_mean", None) or IMAGENET_DEFAULT_MEAN
    std = getattr(image_processor, "image_std", None) or IMAGENET_DEFAULT_STD
    mean = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - mean) / std


__all__ = ["normalize_images"]
