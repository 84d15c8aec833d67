"""Tiny random checkpoints of the transformers classes hf_simo imports (Depth Anything v1/v2, DPT-DINOv2, a bare
DINOv2), saved as Hub-like folders. Weights are re-drawn with a large standard deviation (`randomize_`):
transformers' own initialisation (std 0.02, zero biases) makes a ReLU depth head output zeros almost everywhere,
and a parity test on zeros cannot fail."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import (
    DepthAnythingConfig,
    DepthAnythingForDepthEstimation,
    Dinov2Config,
    Dinov2Model,
    DPTConfig,
    DPTForDepthEstimation,
    DPTImageProcessor,
    PreTrainedModel,
)


ENCODER_KWARGS = {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2, "mlp_ratio": 2}
KINDS = ("da1", "da2", "da2_metric", "dpt_dinov2")


def tiny_dinov2_config(**kwargs) -> Dinov2Config:
    return Dinov2Config(**{**ENCODER_KWARGS, "patch_size": 14, "image_size": 56, **kwargs})


def tiny_depth_anything_config(version: int = 2, metric: bool = False, **kwargs) -> DepthAnythingConfig:
    """v1 reads the last four blocks (as LiheYoung/depth-anything-*-hf read [9, 10, 11, 12] of 12), v2 evenly
    spaced ones (as [3, 6, 9, 12]); metric adds the sigmoid x max_depth head (Depth-Anything-V2-Metric-*)."""
    out_indices = [3, 4, 5, 6] if version == 1 else [1, 3, 4, 6]
    backbone = tiny_dinov2_config(
        num_hidden_layers=6, out_indices=out_indices, reshape_hidden_states=False, apply_layernorm=True
    )
    defaults = {
        "patch_size": 14,
        "reassemble_hidden_size": 32,
        "neck_hidden_sizes": [4, 8, 16, 32],
        "fusion_hidden_size": 16,
        "head_hidden_size": 8,
        "depth_estimation_type": "metric" if metric else "relative",
        "max_depth": 20 if metric else 1,
    }
    return DepthAnythingConfig(backbone_config=backbone, **{**defaults, **kwargs})


def tiny_dpt_dinov2_config(**kwargs) -> DPTConfig:
    """DPT-DINOv2 as transformers' conversion script builds it: un-normed features of every third block (here
    [1, 2, 3, 4]), no fusion-residual bias, the 256-channel projection before the depth head."""
    backbone = tiny_dinov2_config(out_indices=[1, 2, 3, 4], apply_layernorm=False, reshape_hidden_states=False)
    options = {"neck_hidden_sizes": [4, 8, 16, 32], "use_bias_in_fusion_residual": False, "add_projection": True}
    return DPTConfig(backbone_config=backbone, **{**options, **kwargs})


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Re-draw every float parameter and buffer in place (weights std 1.5/sqrt(fan_in), 1-D tensors around their
    value, BatchNorm variances positive)."""
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if not tensor.is_floating_point():
            continue
        noise = torch.randn(tensor.shape, generator=generator)
        if name.endswith("running_var"):
            tensor.copy_(noise.abs() + 0.5)
        elif tensor.ndim >= 2 and not name.endswith(("_token", "position_embeddings")):
            tensor.copy_(noise * 1.5 / tensor[0].numel() ** 0.5)
        else:
            tensor.add_(noise * 0.2)
    return model


def tiny_transformers_model(kind: str, seed: int = 0, **kwargs) -> PreTrainedModel:
    """`kind`: da1, da2, da2_metric, dpt_dinov2, dinov2 -- a randomised tiny model in eval mode."""
    if kind.startswith("da"):
        config = tiny_depth_anything_config(version=int(kind[2]), metric=kind.endswith("metric"), **kwargs)
        model = DepthAnythingForDepthEstimation(config)
    elif kind == "dpt_dinov2":
        model = DPTForDepthEstimation(tiny_dpt_dinov2_config(**kwargs))
    elif kind == "dinov2":
        model = Dinov2Model(tiny_dinov2_config(**kwargs))
    else:
        raise ValueError(f"unknown tiny model kind {kind!r}")
    return randomize_(model, seed).eval()


def depth_image_processor(kind: str) -> DPTImageProcessor:
    """The processor each family ships: Depth Anything resizes keeping the aspect ratio (multiple of 14);
    DPT-DINOv2 keeps the size and pads to a multiple of 14 (0-255 mean/std, no rescale)."""
    if kind == "dpt_dinov2":
        return DPTImageProcessor(
            do_resize=False,
            do_rescale=False,
            do_pad=True,
            size_divisibility=14,
            image_mean=[123.675, 116.28, 103.53],
            image_std=[58.395, 57.12, 57.375],
        )
    return DPTImageProcessor(
        do_resize=True,
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )


def save_tiny_transformers(kind: str, folder: str | os.PathLike, seed: int = 0, **kwargs) -> Path:
    """A tiny checkpoint folder as the Hub holds it: config.json, model.safetensors, preprocessor_config.json."""
    folder = Path(folder)
    tiny_transformers_model(kind, seed, **kwargs).save_pretrained(folder)
    if kind != "dinov2":
        depth_image_processor(kind).save_pretrained(folder)
    return folder


__all__ = [
    "KINDS",
    "depth_image_processor",
    "randomize_",
    "save_tiny_transformers",
    "tiny_depth_anything_config",
    "tiny_dinov2_config",
    "tiny_dpt_dinov2_config",
    "tiny_transformers_model",
]
