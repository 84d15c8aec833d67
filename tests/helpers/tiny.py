"""Tiny DINOv2 configs and SimoModels built locally (no download, milliseconds), and valid random labels."""

from __future__ import annotations

import torch
from transformers import Dinov2Config

from hf_simo import SimoConfig, SimoModel


TINY_BACKBONE = {
    "hidden_size": 32,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "mlp_ratio": 2,
    "patch_size": 8,
    "image_size": 32,
}
TINY_DPT = {"fusion_hidden_size": 16}

# one task of every kind, with both head types represented
TINY_TASKS = {
    "segmentation": {"kind": "semantic_segmentation", "num_outputs": 5},
    "depth": {"kind": "depth", "head": "dpt", "head_options": TINY_DPT},
    "normals": {"kind": "surface_normals"},
    "disparity": {"kind": "disparity"},
    "edges": {"kind": "regression", "num_outputs": 2, "head": "dpt", "head_options": TINY_DPT},
}


def tiny_backbone_config(**overrides) -> Dinov2Config:
    return Dinov2Config(**{**TINY_BACKBONE, **overrides})


def tiny_config(tasks: dict | None = None, **overrides) -> SimoConfig:
    return SimoConfig(
        backbone_config=tiny_backbone_config(), tasks=TINY_TASKS if tasks is None else tasks, **overrides
    )


def tiny_model(tasks: dict | None = None, seed: int = 0) -> SimoModel:
    torch.manual_seed(seed)
    return SimoModel(tiny_config(tasks)).eval()


def random_labels(config: SimoConfig, batch: int, height: int, width: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Valid labels of the right shape and dtype for every task of `config`."""
    gen = torch.Generator().manual_seed(seed)
    labels = {}
    for name, spec in config.task_specs.items():
        if spec.kind == "semantic_segmentation":
            labels[name] = torch.randint(0, spec.num_outputs, (batch, height, width), generator=gen)
        elif spec.kind == "surface_normals":
            labels[name] = torch.nn.functional.normalize(torch.randn(batch, 3, height, width, generator=gen), dim=1)
        else:
            labels[name] = torch.rand(batch, spec.num_outputs, height, width, generator=gen) + 0.1
    return labels
