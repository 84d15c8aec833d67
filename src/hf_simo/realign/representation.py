"""Representation re-alignment (paper 5.0.2): low-rank adapters trained jointly with the heads, through PEFT.

The default adapter sits *after* each block (output = block(x) + B·A·x, rank 16, about 0.3M parameters on ViT-B):
`SimoModel.enable_block_adapters("linear")` adds zero d×d slots and `block_lora_config` targets them with a LoRA,
so PEFT owns training, saving (`adapter_model.safetensors` + `adapter_config.json`) and folding (`merge_and_unload`
puts B·A into the slots, giving a plain `SimoModel` with `config.block_adapter="linear"`). Any user `LoraConfig`
works too (e.g. `target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"]`, which folds into the
DINOv2 weights themselves). The authors' non-linear variant (`variant="relu"`) trains native modules instead.
Heads train with the adapters: PEFT saves them through `modules_to_save`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from ..block_adapters import LEGACY_SLOT_TARGET_PATTERNS, SLOT_NAME, SLOT_TARGET_PATTERN, validate_rank
from ..hub import CheckpointError
from ..modeling_simo import SimoModel, freeze_unused_parameters


VARIANTS = ("lora", "relu")


def block_lora_config(
    rank: int = 16,
    *,
    alpha: float | None = None,
    dropout: float = 0.0,
    task_names: list[str] | None = None,
) -> LoraConfig:
    """The paper's adapter: a rank-`rank` LoRA on the slot after each block (scaling alpha/rank, default 1).

    `task_names` lists the heads trained (and saved) with the adapters.
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"LoRA rank must be a positive integer, got {rank!r}")
    return LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else rank,
        lora_dropout=dropout,
        target_modules=SLOT_TARGET_PATTERN,
        modules_to_save=[f"heads.{name}" for name in task_names or []],
        bias="none",
    )


def _uses_block_slots(lora_config: LoraConfig) -> bool:
    targets = lora_config.target_modules
    if isinstance(targets, str):
        return targets in (SLOT_TARGET_PATTERN, *LEGACY_SLOT_TARGET_PATTERNS)
    return isinstance(targets, (list, set)) and SLOT_NAME in targets


def prepare_representation_realignment(
    model: SimoModel,
    *,
    rank: int = 16,
    variant: str = "lora",
    lora_config: LoraConfig | None = None,
    train_heads: bool = True,
) -> nn.Module:
    """Freeze the merged encoder and return the model to train: adapters (and heads) trainable, nothing else.

    Returns a `PeftModel` for LoRA adapters (the default, or `lora_config`), or `model` itself for `variant="relu"`.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
    hidden = model.config.backbone_config.hidden_size
    if variant == "relu":
        if lora_config is not None:
            raise ValueError("lora_config applies to variant='lora'; the 'relu' variant is not a LoRA")
        validate_rank(rank, hidden)
        model.enable_block_adapters("relu", rank)
        model.requires_grad_(False)
        for layer in model.encoder_blocks():
            layer.relu_adapter.requires_grad_(True)
        if train_heads:
            model.heads.requires_grad_(True)
        freeze_unused_parameters(model)
        return model

    if lora_config is None:
        validate_rank(rank, hidden)
        lora_config = block_lora_config(rank, task_names=model.task_names if train_heads else None)
    elif train_heads and not lora_config.modules_to_save:
        lora_config.modules_to_save = [f"heads.{name}" for name in model.task_names]
    if lora_config.r > hidden:
        raise ValueError(f"LoRA rank {lora_config.r} is larger than the hidden size {hidden}")
    if _uses_block_slots(lora_config) and model.config.block_adapter is None:
        model.enable_block_adapters("linear")
    peft_model = get_peft_model(model, lora_config)
    freeze_unused_parameters(peft_model)
    return peft_model


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def adapter_parameters(model: nn.Module) -> int:
    """Parameters of the adapters alone (LoRA A/B or the ReLU bottlenecks), not the heads."""
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if p.requires_grad and ("lora_" in name or ".relu_adapter." in name)
    )


def fold_adapters(model: nn.Module) -> SimoModel:
    """A plain `SimoModel` with the adapters folded in (`merge_and_unload` for PEFT models)."""
    if isinstance(model, PeftModel):
        folded = model.merge_and_unload()
    elif isinstance(model, SimoModel):
        folded = model
    else:
        raise TypeError(f"expected a PeftModel or a SimoModel, got {type(model).__name__}")
    folded.requires_grad_(True)
    return freeze_unused_parameters(folded)


def load_realignment_adapter(
    model: SimoModel, adapter: str | os.PathLike, *, is_trainable: bool = False, **kwargs
) -> PeftModel:
    """Attach a saved re-alignment adapter (PEFT format: a folder or Hub repo) to a merged `SimoModel`."""
    config_path = Path(adapter) / "adapter_config.json"
    if config_path.is_file():
        lora_config = LoraConfig.from_pretrained(str(adapter))
    else:
        lora_config = LoraConfig.from_pretrained(str(adapter), **kwargs)
    if _uses_block_slots(lora_config) and model.config.block_adapter is None:
        model.enable_block_adapters("linear")
    try:
        return PeftModel.from_pretrained(model, str(adapter), is_trainable=is_trainable, **kwargs)
    except RuntimeError as err:
        if "size mismatch" in str(err):
            saved = json.loads(config_path.read_text()) if config_path.is_file() else {}
            raise CheckpointError(
                f"adapter {adapter} was saved for a different encoder or heads (r={saved.get('r')}); this model has "
                f"hidden size {model.config.backbone_config.hidden_size} and tasks {model.task_names}: {err}"
            ) from err
        raise


__all__ = [
    "VARIANTS",
    "adapter_parameters",
    "block_lora_config",
    "fold_adapters",
    "load_realignment_adapter",
    "prepare_representation_realignment",
    "trainable_parameters",
]
