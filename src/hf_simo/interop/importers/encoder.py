"""A bare pre-trained encoder (e.g. `facebook/dinov2-small`) -> theta_0, in every encoder family: `Dinov2Model`,
`Dinov2WithRegistersModel`, `DINOv3ViTModel` and their `*Backbone` classes (`hf_simo.encoder_families`).

A `*Backbone` checkpoint holds the same tensors as the `*Model` one (no pooler in either); its backbone-only config
fields (`out_indices`, `apply_layernorm`, ...) are dropped.
"""

from __future__ import annotations

from transformers import PreTrainedConfig

from ...encoder_families import ENCODER_FAMILIES, encoder_family
from ..plan import ENCODER_PREFIX, Importer, ImportPlan, encoder_config, module_names, prefix_key_map


def plan(config: PreTrainedConfig, task: str, source: str) -> ImportPlan:
    encoder = encoder_config(config)
    model_class = encoder_family(config, source).model_cls()
    return ImportPlan(
        format="encoder",
        source_class=model_class,
        source_config=config,
        backbone_config=encoder,
        tasks={},
        key_map=prefix_key_map(module_names(model_class, encoder), {"": ENCODER_PREFIX}, source=source),
    )


ARCHITECTURES = tuple(name for family in ENCODER_FAMILIES.values() for name in family.architectures)
IMPORTER = Importer(
    name="encoder",
    summary=f"a pre-trained encoder (theta_0): {', '.join(ARCHITECTURES)}",
    architectures=ARCHITECTURES,
    model_types=tuple(ENCODER_FAMILIES),
    plan=plan,
)
