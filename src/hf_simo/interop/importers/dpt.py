"""`DPTForDepthEstimation` on a DINOv2 backbone (`facebook/dpt-dinov2-*-{nyu,kitti}`) -> one `dpt` depth task.

DPT-DINOv2 differs from hf_simo's default DPT head in what it is fed: its backbone has `apply_layernorm=False`, so
the neck reads the blocks' raw outputs (head option `layernorm: false`); and in DPTConfig settings
(`use_bias_in_fusion_residual=False`, `add_projection=True`), all carried as head options. The published heads
predict metric depth (NYU: indoor, KITTI: outdoor) -> kind `depth`.

Refused, each with its reason: DPT-hybrid (`is_hybrid`, a BiT + ViT encoder), DPT with its own ViT (no
`backbone_config`, e.g. Intel/dpt-large), and backbones other than DINOv2 (BEiT, Swin v2, ...).
"""

from __future__ import annotations

from typing import Any

from transformers import DPTForDepthEstimation, PreTrainedConfig

from ...errors import CheckpointError, UnsupportedFormatError
from ..plan import Importer, ImportPlan
from .depth_anything import check_dinov2_backbone, neck_and_head_plan


def task_spec(config: PreTrainedConfig) -> dict[str, Any]:
    options = {
        "neck_hidden_sizes": list(config.neck_hidden_sizes),
        "reassemble_factors": list(config.reassemble_factors),
        "fusion_hidden_size": config.fusion_hidden_size,
        "readout_type": config.readout_type,
        "use_batch_norm_in_fusion_residual": bool(config.use_batch_norm_in_fusion_residual),
        "use_bias_in_fusion_residual": config.use_bias_in_fusion_residual,
        "add_projection": bool(config.add_projection),
        "semantic_classifier_dropout": config.semantic_classifier_dropout,
        "hidden_act": config.hidden_act,
        "layernorm": bool(config.backbone_config.apply_layernorm),
    }
    return {
        "kind": "depth",
        "num_outputs": 1,
        "invalid_value": 0.0,
        "head": "dpt",
        "head_options": options,
        "layers": list(config.backbone_config.out_indices),
    }


def plan(config: PreTrainedConfig, task: str, source: str) -> ImportPlan:
    fix = "hf_simo imports DPT models on DINOv2 backbones only (e.g. facebook/dpt-dinov2-small-nyu)"
    if config.is_hybrid:
        raise UnsupportedFormatError(f"{source} is a DPT-hybrid model (BiT convolutional stem + ViT); {fix}")
    if config.backbone_config is None:
        raise UnsupportedFormatError(
            f"{source} is a DPT model with its own ViT encoder (no backbone_config, e.g. Intel/dpt-large); {fix}"
        )
    check_dinov2_backbone(config, source, "DPT model")
    if config.add_projection and config.fusion_hidden_size != 256:
        raise CheckpointError(
            f"{source}: add_projection needs fusion_hidden_size 256 (transformers' projection is 256 channels), got "
            f"{config.fusion_hidden_size}; transformers cannot run this config either"
        )
    return neck_and_head_plan("dpt", DPTForDepthEstimation, config, task_spec(config), task, source)


IMPORTER = Importer(
    name="dpt",
    summary="DPTForDepthEstimation on a DINOv2 backbone (DPT-DINOv2)",
    architectures=("DPTForDepthEstimation",),
    model_types=("dpt",),
    plan=plan,
)
