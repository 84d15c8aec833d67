"""Task heads: DINOv2's dense linear head, transformers' DPT decoder and transformers' Depth Anything decoder.

Every head takes the same input, the encoder features the model computed once for all tasks, and returns the
prediction at the head's own resolution; the model resizes to the input. Adding a head type means writing one
`nn.Module` with that signature and registering it in `HEAD_BUILDERS`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DepthAnythingConfig, Dinov2Config, DPTConfig
from transformers.models.depth_anything.modeling_depth_anything import (
    DepthAnythingDepthEstimationHead,
    DepthAnythingNeck,
)
from transformers.models.dpt.modeling_dpt import DPTDepthEstimationHead, DPTNeck, DPTSemanticSegmentationHead

from .configuration_simo import TaskSpec, feature_key


class LinearHead(nn.Module):
    """DINOv2's dense linear evaluation head.

    For each selected layer the patch tokens are concatenated with the CLS token (broadcast over the grid), the
    layers are concatenated on channels, then BatchNorm and a 1x1 convolution predict at the patch grid.

    Computed in token layout — (B·h·w) rows × channels: the BatchNorm over (B, h, w) is the `BatchNorm2d` module on
    an (rows, C, 1, 1) view and the 1x1 convolution is one matmul with its weight — the same parameters and
    results as the NCHW formulation, about twice as fast on CPU (it dominates head re-alignment on cached features).
    """

    def __init__(self, spec: TaskSpec, backbone_config: Dinov2Config):
        super().__init__()
        self.layers = list(spec.layers)
        self.use_cls_token = bool(spec.head_options["use_cls_token"])
        self.dropout_p = float(spec.head_options["dropout"])
        in_channels = backbone_config.hidden_size * len(self.layers) * (2 if self.use_cls_token else 1)
        self.batch_norm = nn.BatchNorm2d(in_channels)
        self.classifier = nn.Conv2d(in_channels, spec.num_outputs, kernel_size=1)

    def forward(self, features: dict[int, torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
        parts = []
        for layer in self.layers:
            tokens = features[layer]  # (B, 1 + h*w, C), layer-normed
            parts.append(tokens[:, 1:])
            if self.use_cls_token:
                parts.append(tokens[:, :1].expand(-1, tokens.shape[1] - 1, -1))
        x = torch.cat(parts, dim=-1)  # (B, h*w, channels): the NCHW head's channels, in the same order
        batch, n, channels = x.shape
        x = self.batch_norm(x.reshape(batch * n, channels, 1, 1)).view(batch, n, channels)
        if self.training and self.dropout_p > 0:  # Dropout2d: whole channels per sample
            x = x * F.dropout(x.new_ones(batch, 1, channels), self.dropout_p, training=True)
        # A fresh copy of the (small) weight: BLAS picks kernels by memory alignment, and weights loaded from
        # safetensors are memory-mapped, so without it a reloaded model could differ from the saved one in the last bit.
        weight = self.classifier.weight.reshape(self.classifier.out_channels, channels).clone()
        out = F.linear(x, weight, self.classifier.bias)
        return out.transpose(1, 2).reshape(batch, -1, *grid)


def neck_hidden_sizes(spec: TaskSpec, backbone_config: Dinov2Config) -> list[int]:
    hidden = backbone_config.hidden_size
    return list(spec.head_options["neck_hidden_sizes"] or [max(1, hidden * f // 8) for f in (1, 2, 4, 8)])


def backbone_config_for(spec: TaskSpec, backbone_config: Dinov2Config) -> Dinov2Config:
    """The encoder config as transformers' DPT / Depth Anything backbones read it: the task's layers as
    `out_indices`, token (not 4-D) feature maps, `apply_layernorm` as the head reads them. A fresh copy: DPTConfig
    resets the attention implementation of the config object it is given."""
    data = copy.deepcopy(backbone_config).to_dict()
    for key in ("out_features", "_out_features", "out_indices", "_out_indices", "stage_names"):
        data.pop(key, None)
    layernorm = bool(spec.head_options.get("layernorm", True))
    data.update(reshape_hidden_states=False, apply_layernorm=layernorm)
    if list(spec.layers) == sorted(set(spec.layers)):  # transformers' backbones take distinct, increasing indices
        data["out_indices"] = list(spec.layers)
    return type(backbone_config).from_dict(data)


def depth_anything_config_for(spec: TaskSpec, backbone_config: Dinov2Config, **extra) -> DepthAnythingConfig:
    """The `DepthAnythingConfig` of a `depth_anything` task; the exporter writes the same one."""
    options = spec.head_options
    return DepthAnythingConfig(
        backbone_config=backbone_config_for(spec, backbone_config),
        patch_size=backbone_config.patch_size,
        reassemble_hidden_size=backbone_config.hidden_size,
        reassemble_factors=list(options["reassemble_factors"]),
        neck_hidden_sizes=neck_hidden_sizes(spec, backbone_config),
        fusion_hidden_size=options["fusion_hidden_size"],
        head_hidden_size=options["head_hidden_size"],
        head_in_index=-1,
        depth_estimation_type=options["depth_estimation_type"],
        max_depth=options["max_depth"],
        **extra,
    )


def dpt_config_for(spec: TaskSpec, backbone_config: Dinov2Config, **extra) -> DPTConfig:
    """The `DPTConfig` that transformers' DPT modules need for this task's head; the exporter writes the same one."""
    options = spec.head_options
    if spec.kind not in ("depth", "disparity"):  # depth exports carry no id2label
        extra.setdefault("num_labels", spec.num_outputs)
    return DPTConfig(
        backbone_config=backbone_config_for(spec, backbone_config),
        neck_hidden_sizes=neck_hidden_sizes(spec, backbone_config),
        reassemble_factors=list(options["reassemble_factors"]),
        fusion_hidden_size=options["fusion_hidden_size"],
        readout_type=options["readout_type"],
        use_batch_norm_in_fusion_residual=options["use_batch_norm_in_fusion_residual"],
        use_bias_in_fusion_residual=options["use_bias_in_fusion_residual"],
        add_projection=options["add_projection"],
        semantic_classifier_dropout=options["semantic_classifier_dropout"],
        hidden_act=options.get("hidden_act", "gelu"),
        head_in_index=-1,
        **extra,
    )


class DPTHead(nn.Module):
    """transformers' `DPTNeck` followed by `DPTDepthEstimationHead` (depth, disparity) or
    `DPTSemanticSegmentationHead` (segmentation logits, or N channels for normals and other regressions).

    Fed with the selected blocks' hidden states (layer-normed, or raw with `layernorm: False` as DPT-DINOv2's
    `apply_layernorm=False` backbone), it computes exactly what `DPTForDepthEstimation` computes on a DINOv2
    backbone with the same weights.
    """

    def __init__(self, spec: TaskSpec, backbone_config: Dinov2Config):
        super().__init__()
        self.layers = list(spec.layers)
        self.feature_keys = [feature_key(layer, spec.head_options.get("layernorm", True)) for layer in self.layers]
        self.scalar_output = spec.kind in ("depth", "disparity")
        dpt_config = dpt_config_for(spec, backbone_config)
        self.neck = DPTNeck(dpt_config)
        self.head = (
            DPTDepthEstimationHead(dpt_config) if self.scalar_output else DPTSemanticSegmentationHead(dpt_config)
        )
        # The first fusion layer never receives a residual, so its residual unit is dead weight in transformers'
        # DPT; frozen so DDP does not wait for gradients that never come (the weights stay for parity).
        self.neck.fusion_stage.layers[0].residual_layer1.requires_grad_(False)

    def forward(self, features: dict[int, torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
        hidden_states = [features[key] for key in self.feature_keys]
        out = self.head(self.neck(hidden_states, grid[0], grid[1]))
        return out.unsqueeze(1) if self.scalar_output else out


class DepthAnythingHead(nn.Module):
    """transformers' `DepthAnythingNeck` + `DepthAnythingDepthEstimationHead` (relative: ReLU, metric: sigmoid; both
    times `max_depth`), fed as `DepthAnythingForDepthEstimation` feeds them: (B, 1, 14·h, 14·w) for patch 14."""

    def __init__(self, spec: TaskSpec, backbone_config: Dinov2Config):
        super().__init__()
        config = depth_anything_config_for(spec, backbone_config)
        self.layers = list(spec.layers)
        self.feature_keys = [feature_key(layer, spec.head_options["layernorm"]) for layer in self.layers]
        self.neck = DepthAnythingNeck(config)
        self.head = DepthAnythingDepthEstimationHead(config)

    def forward(self, features: dict[int, torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
        hidden_states = [features[key] for key in self.feature_keys]
        return self.head(self.neck(hidden_states, grid[0], grid[1]), grid[0], grid[1]).unsqueeze(1)


HEAD_BUILDERS: dict[str, Callable[[TaskSpec, Dinov2Config], nn.Module]] = {
    "linear": LinearHead,
    "dpt": DPTHead,
    "depth_anything": DepthAnythingHead,
}


def build_head(spec: TaskSpec, backbone_config: Dinov2Config) -> nn.Module:
    """Build the head a (resolved) task spec asks for."""
    try:
        builder = HEAD_BUILDERS[spec.head]
    except KeyError:
        raise ValueError(f"unknown head type {spec.head!r}; registered: {sorted(HEAD_BUILDERS)}") from None
    return builder(spec, backbone_config)


__all__ = [
    "DPTHead",
    "DepthAnythingHead",
    "HEAD_BUILDERS",
    "LinearHead",
    "backbone_config_for",
    "build_head",
    "depth_anything_config_for",
    "dpt_config_for",
]
