"""`DepthAnythingForDepthEstimation` (v1, v2; relative and metric) -> a SimoModel with one `depth_anything` task.

Depth Anything v1 (`LiheYoung/depth-anything-*-hf`) and v2 (`depth-anything/Depth-Anything-V2-*-hf`) are the same
transformers class; they differ in `backbone_config.out_indices` (v1: the last four blocks; v2: evenly spaced),
which become the task's `layers`. `depth_estimation_type` decides the task kind: "metric" predicts depth in metres
(sigmoid x `max_depth`) -> kind `depth`; "relative" predicts affine-invariant inverse depth (ReLU) -> `disparity`.
"""

from __future__ import annotations

from typing import Any

from transformers import DepthAnythingForDepthEstimation, PreTrainedConfig

from ...errors import CheckpointError, UnsupportedFormatError
from ..plan import ENCODER_PREFIX, Importer, ImportPlan, encoder_config, module_names, prefix_key_map


def check_dinov2_backbone(config: PreTrainedConfig, source: str, what: str) -> PreTrainedConfig:
    """The DINOv2 backbone config of a DPT / Depth Anything config, or an error naming what it is instead.

    Only `dinov2` runs inside transformers' DPT and Depth Anything necks the way hf_simo merges it: they read
    hidden_state[:, 1:] as the patch grid, which registers (DINOv2-with-registers, DINOv3) or 4-D maps break.
    """
    if getattr(config, "backbone", None) or getattr(config, "use_timm_backbone", False):
        raise UnsupportedFormatError(
            f"{source} loads its backbone by name ({config.backbone!r}) instead of a backbone_config; hf_simo needs "
            "the DINOv2 weights inside the checkpoint"
        )
    backbone = config.backbone_config
    model_type = getattr(backbone, "model_type", None)
    if model_type != "dinov2":
        raise UnsupportedFormatError(
            f"{source} is a {what} on a {model_type!r} backbone; hf_simo imports {what}s on DINOv2 backbones "
            "(backbone_config.model_type 'dinov2') only, because it merges DINOv2 encoders fine-tuned from one base "
            "(e.g. depth-anything/Depth-Anything-V2-Small-hf, facebook/dpt-dinov2-small-nyu)"
        )
    if backbone.reshape_hidden_states:
        raise UnsupportedFormatError(
            f"{source}: backbone_config.reshape_hidden_states is true; transformers' {what} reads token feature "
            "maps (false, as every published checkpoint sets)"
        )
    return backbone


def neck_and_head_plan(
    format: str, source_class: type, config: PreTrainedConfig, spec: dict[str, Any], task: str, source: str
) -> ImportPlan:
    """The `ImportPlan` of a DPT-style checkpoint (DPT-DINOv2, Depth Anything): its DINOv2 backbone becomes the
    encoder, its neck and head the head of `task` (`spec`); transformers feeds the head the last stage only
    (``head_in_index`` -1), the one layout hf_simo's heads have."""
    if config.head_in_index != -1:
        raise CheckpointError(f"{source}: head_in_index {config.head_in_index}; hf_simo imports -1 (the last stage)")
    rules = {"backbone.": ENCODER_PREFIX, "neck.": f"heads.{task}.neck.", "head.": f"heads.{task}.head."}
    return ImportPlan(
        format=format,
        source_class=source_class,
        source_config=config,
        backbone_config=encoder_config(config.backbone_config),
        tasks={task: spec},
        key_map=prefix_key_map(module_names(source_class, config), rules, source=source),
    )


def task_spec(config: PreTrainedConfig) -> dict[str, Any]:
    """Kind and metric from the depth type, head options as in the config, layers = the backbone's out_indices."""
    options = {
        "neck_hidden_sizes": list(config.neck_hidden_sizes),
        "reassemble_factors": list(config.reassemble_factors),
        "fusion_hidden_size": config.fusion_hidden_size,
        "head_hidden_size": config.head_hidden_size,
        "depth_estimation_type": config.depth_estimation_type,
        "max_depth": config.max_depth,
        "layernorm": bool(config.backbone_config.apply_layernorm),
    }
    return {
        "kind": "depth" if config.depth_estimation_type == "metric" else "disparity",
        "num_outputs": 1,
        "invalid_value": 0.0,
        "head": "depth_anything",
        "head_options": options,
        "layers": list(config.backbone_config.out_indices),
    }


def plan(config: PreTrainedConfig, task: str, source: str) -> ImportPlan:
    backbone = check_dinov2_backbone(config, source, "Depth Anything model")
    if config.patch_size != backbone.patch_size or config.reassemble_hidden_size != backbone.hidden_size:
        raise CheckpointError(
            f"{source}: patch_size {config.patch_size} / reassemble_hidden_size {config.reassemble_hidden_size} "
            f"differ from the backbone's {backbone.patch_size} / {backbone.hidden_size}; transformers' Depth "
            "Anything cannot run this config either"
        )
    if config.max_depth is None:
        raise CheckpointError(
            f"{source}: max_depth is null; transformers' Depth Anything head multiplies by it (relative models use "
            "1), so this config does not run in transformers either. Set max_depth in its config.json"
        )
    sizes = {len(backbone.out_indices), len(config.neck_hidden_sizes), len(config.reassemble_factors)}
    if len(sizes) != 1:
        raise CheckpointError(
            f"{source}: out_indices {backbone.out_indices}, neck_hidden_sizes {config.neck_hidden_sizes} and "
            f"reassemble_factors {config.reassemble_factors} must have one entry per feature layer"
        )
    return neck_and_head_plan(
        "depth_anything", DepthAnythingForDepthEstimation, config, task_spec(config), task, source
    )


IMPORTER = Importer(
    name="depth_anything",
    summary="DepthAnythingForDepthEstimation v1/v2, relative or metric, on a DINOv2 backbone",
    architectures=("DepthAnythingForDepthEstimation",),
    model_types=("depth_anything",),
    plan=plan,
)
