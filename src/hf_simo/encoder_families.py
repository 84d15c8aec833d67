"""Encoder families: the transformers ViTs a `SimoModel` encoder can be, and the few facts hf_simo needs of each.

`SimoConfig.backbone_config.model_type` picks the family. Everything else reads it from here rather than spelling
module paths out: where the blocks live (block adapters, layer-wise coefficients, layer-wise learning rates), the
final norm (the features heads read), how many prefix tokens precede the patch grid (1 CLS + registers: heads read
CLS + patches, never registers), and how stored tensor names map onto module names.

The encoder is always the `SimoModel.dinov2` attribute (state-dict prefix `dinov2.`), whatever its family, so old
checkpoints keep their names.

Extension point, adding a family: one `EncoderFamily` entry in `ENCODER_FAMILIES` (the transformers config, model
and backbone class names, the blocks' module path, the final norm, any legacy stored-name prefixes transformers'
conversion mapping renames), then a tiny random model of it in `tests/test_encoder_families.py`'s `FAMILIES`. The
encoder must return `hidden_states` as (embeddings, block 1, ..., block L) with tokens laid out CLS, registers,
patches, as all three families here do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import UnsupportedFormatError


if TYPE_CHECKING:
    from torch import nn


ENCODER_ATTRIBUTE = "dinov2"  # the SimoModel attribute holding the encoder, for every family (old checkpoints)
ENCODER_PREFIX = f"{ENCODER_ATTRIBUTE}."


@dataclass(frozen=True)
class EncoderFamily:
    """One transformers encoder class hf_simo runs, merges and re-aligns.

    Args:
        model_type: the config's `model_type` (`backbone_config.model_type` of a `SimoConfig`).
        config_class / model_class / backbone_class: transformers class names (imported when used).
        blocks: module path of the blocks' `nn.ModuleList` inside the encoder.
        final_norm: module path of the final layer norm (what `+i` features are normed with).
        legacy_prefixes: stored name prefix -> module name prefix, for the renames transformers' conversion mapping
            applies when it loads this family's checkpoints (its `save_pretrained` writes the stored names).
        summary: how errors and docs name the family.
    """

    model_type: str
    config_class: str
    model_class: str
    backbone_class: str
    blocks: str
    final_norm: str
    legacy_prefixes: tuple[tuple[str, str], ...] = ()
    summary: str = ""

    @property
    def architectures(self) -> tuple[str, str]:
        """The transformers classes whose checkpoints hold exactly this encoder (no head): model and backbone."""
        return (self.model_class, self.backbone_class)

    def config_cls(self) -> type:
        import transformers

        return getattr(transformers, self.config_class)

    def model_cls(self) -> type:
        import transformers

        return getattr(transformers, self.model_class)

    def build(self, config: Any) -> nn.Module:
        """A freshly initialised encoder of this family."""
        return self.model_cls()(config)

    def block_modules(self, encoder: nn.Module) -> nn.ModuleList:
        return encoder.get_submodule(self.blocks)

    def norm_module(self, encoder: nn.Module) -> nn.Module:
        return encoder.get_submodule(self.final_norm)

    @property
    def slot_pattern(self) -> str:
        """The regex part matching this family's blocks in full module names (`...<blocks>.<i>`)."""
        return rf"{re.escape(self.blocks)}\.\d+"


ENCODER_FAMILIES: dict[str, EncoderFamily] = {
    family.model_type: family
    for family in (
        EncoderFamily(
            model_type="dinov2",
            config_class="Dinov2Config",
            model_class="Dinov2Model",
            backbone_class="Dinov2Backbone",
            blocks="encoder.layer",
            final_norm="layernorm",
            summary="DINOv2 (Dinov2Model, e.g. facebook/dinov2-base)",
        ),
        EncoderFamily(
            model_type="dinov2_with_registers",
            config_class="Dinov2WithRegistersConfig",
            model_class="Dinov2WithRegistersModel",
            backbone_class="Dinov2WithRegistersBackbone",
            blocks="encoder.layer",
            final_norm="layernorm",
            summary="DINOv2 with registers (Dinov2WithRegistersModel, e.g. facebook/dinov2-with-registers-base)",
        ),
        EncoderFamily(
            model_type="dinov3_vit",
            config_class="DINOv3ViTConfig",
            model_class="DINOv3ViTModel",
            backbone_class="DINOv3ViTBackbone",
            blocks="model.layer",
            final_norm="norm",
            # transformers' mapping for dinov3_vit: `(?<!model\.)layer.` -> `model.layer.`; anchored at the start
            # of the encoder name here (unanchored, it would also rewrite `layer_scale1` in module names)
            legacy_prefixes=(("layer.", "model.layer."),),
            summary="DINOv3 ViT (DINOv3ViTModel, e.g. facebook/dinov3-vits16-pretrain-lvd1689m)",
        ),
    )
}

BLOCK_KEY_RE = re.compile(
    r"^(?:" + "|".join(sorted({re.escape(f.blocks) for f in ENCODER_FAMILIES.values()})) + r")\.(\d+)\."
)
"""Block index of an encoder tensor name (without `dinov2.`), in any family: `encoder.layer.3.*`, `model.layer.3.*`."""


def supported_encoders() -> str:
    return "; ".join(f"{f.model_type!r}: {f.summary}" for f in ENCODER_FAMILIES.values())


def encoder_family(config_or_model_type: Any, source: str | None = None) -> EncoderFamily:
    """The family of an encoder config (or a `model_type`); an unknown one is an error listing the supported."""
    model_type = (
        config_or_model_type
        if isinstance(config_or_model_type, str) or config_or_model_type is None
        else getattr(config_or_model_type, "model_type", type(config_or_model_type).__name__)
    )
    family = ENCODER_FAMILIES.get(model_type)
    if family is None:
        where = f"{source}: " if source else ""
        raise UnsupportedFormatError(
            f"{where}a {model_type!r} encoder is not one hf_simo runs; supported encoder families: "
            f"{supported_encoders()}. To add one: an EncoderFamily in hf_simo.encoder_families"
        )
    return family


def is_encoder_config(config: Any) -> bool:
    """Whether `config` is the config of a supported family (its exact class: `DPTConfig` etc. are not)."""
    family = ENCODER_FAMILIES.get(getattr(config, "model_type", None))
    return family is not None and type(config).__name__ == family.config_class


def num_prefix_tokens(config: Any) -> int:
    """Tokens before the patch grid in the encoder's hidden states: 1 CLS + the register tokens."""
    return 1 + int(getattr(config, "num_register_tokens", 0) or 0)


def block_index(key: str) -> int | None:
    """0-based block of an encoder tensor name (without `dinov2.`), None outside the blocks."""
    match = BLOCK_KEY_RE.match(key)
    return int(match.group(1)) if match else None


def module_prefix_name(key: str) -> str:
    """An encoder tensor name (optionally `dinov2.`-prefixed) with legacy stored prefixes (DINOv3's bare `layer.`)
    renamed to module names; names of other families never start with a legacy prefix."""
    prefix = ENCODER_PREFIX if key.startswith(ENCODER_PREFIX) else ""
    rest = key[len(prefix) :]
    for family in ENCODER_FAMILIES.values():
        for legacy, module in family.legacy_prefixes:
            if rest.startswith(legacy):
                return prefix + module + rest[len(legacy) :]
    return key


def slot_target_pattern(slot_name: str) -> str:
    """PEFT `target_modules` regex selecting exactly the block slots named `slot_name`, in every family."""
    blocks = "|".join(sorted({f.slot_pattern for f in ENCODER_FAMILIES.values()}))
    return rf".*(?:{blocks})\.{re.escape(slot_name)}"


__all__ = [
    "BLOCK_KEY_RE",
    "ENCODER_ATTRIBUTE",
    "ENCODER_FAMILIES",
    "ENCODER_PREFIX",
    "EncoderFamily",
    "block_index",
    "encoder_family",
    "is_encoder_config",
    "module_prefix_name",
    "num_prefix_tokens",
    "slot_target_pattern",
    "supported_encoders",
]
