"""A bare pre-trained encoder (`Dinov2Model` / `Dinov2Backbone`, e.g. `facebook/dinov2-small`) -> theta_0.

A `Dinov2Backbone` checkpoint holds the same tensors as the `Dinov2Model` one (no pooler in either); its
backbone-only config fields (`out_indices`, `apply_layernorm`, ...) are dropped.
"""

from __future__ import annotations

from transformers import Dinov2Model, PreTrainedConfig

from ..plan import ENCODER_PREFIX, Importer, ImportPlan, encoder_config, module_names, prefix_key_map


def plan(config: PreTrainedConfig, task: str, source: str) -> ImportPlan:
    encoder = encoder_config(config)
    return ImportPlan(
        format="encoder",
        source_class=Dinov2Model,
        source_config=config,
        backbone_config=encoder,
        tasks={},
        key_map=prefix_key_map(module_names(Dinov2Model, encoder), {"": ENCODER_PREFIX}, source=source),
    )


IMPORTER = Importer(
    name="encoder",
    summary="a pre-trained DINOv2 encoder (theta_0): Dinov2Model, Dinov2Backbone",
    architectures=("Dinov2Model", "Dinov2Backbone"),
    model_types=("dinov2",),
    plan=plan,
)
