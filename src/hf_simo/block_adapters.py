"""Adapters *after* each transformer block, native to `SimoModel` so re-aligned models load without PEFT.

Representation re-alignment (paper 5.0.2) adds a low-rank map after every block: output = block(x) + B·A·x.
Each encoder block (`Dinov2Layer`, `Dinov2WithRegistersLayer`, `DINOv3ViTLayer`) gets a frozen, zero-initialised
`BlockAdapterSlot` (a d×d `nn.Linear`) and a forward hook that adds `slot(x)` to the block output. PEFT trains a LoRA on the slot (`target_modules` = the slots), saves it in its
own format and folds it with `merge_and_unload()` into the slot's weight, which this module then carries in a
plain `SimoModel` (`config.block_adapter = "linear"`). A zero slot leaves the model unchanged.

The authors' notebook variant is also here (`"relu"`): output = o − up(ReLU(down(o))) on the block output o, with
`up` zero-initialised; it is non-linear, so it trains as plain modules (no PEFT, no folding).

The hooks are registered with `prepend=True`: transformers records `hidden_states` with hooks of its own on the same
layers, and those must see the adapted output.
"""

from __future__ import annotations

import torch
from torch import nn

from .encoder_families import slot_target_pattern


BLOCK_ADAPTER_KINDS = ("linear", "relu")
SLOT_NAME = "adapter_slot"
RELU_ADAPTER_NAME = "relu_adapter"
SLOT_TARGET_PATTERN = slot_target_pattern(SLOT_NAME)
"""PEFT `target_modules` regex that selects exactly the block slots, in every encoder family (DINOv2's blocks are
`encoder.layer.<i>`, DINOv3's `model.layer.<i>`; `hf_simo.encoder_families`)."""
LEGACY_SLOT_TARGET_PATTERNS = (rf".*encoder\.layer\.\d+\.{SLOT_NAME}",)
"""The patterns adapters saved by earlier versions carry in `adapter_config.json` (DINOv2 only)."""


class BlockAdapterSlot(nn.Linear):
    """Frozen d×d map added to a block's output, zero until PEFT folds a trained LoRA into it."""

    def __init__(self, hidden_size: int):
        super().__init__(hidden_size, hidden_size, bias=False)
        self.reset_parameters()
        self.weight.requires_grad_(False)

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)


class ReluBottleneckAdapter(nn.Module):
    """The authors' code variant: o − up(ReLU(down(o))), `up` zero-initialised so training starts at identity."""

    def __init__(self, hidden_size: int, rank: int):
        super().__init__()
        self.down = nn.Linear(hidden_size, rank)
        self.up = nn.Linear(rank, hidden_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.down.weight, a=5**0.5)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states - self.up(torch.relu(self.down(hidden_states)))


def _slot_hook(module: nn.Module, args, kwargs, output):
    hidden_states = args[0] if args else kwargs["hidden_states"]
    return output + getattr(module, SLOT_NAME)(hidden_states)


def _relu_hook(module: nn.Module, args, kwargs, output):
    return getattr(module, RELU_ADAPTER_NAME)(output)


def validate_rank(rank: int, hidden_size: int) -> int:
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= hidden_size:
        raise ValueError(f"adapter rank must be an integer in [1, hidden_size={hidden_size}], got {rank!r}")
    return rank


def attach_block_adapters(layers: nn.ModuleList, kind: str, hidden_size: int, rank: int | None = None) -> None:
    """Give every block a slot (`"linear"`) or a ReLU bottleneck (`"relu"`) and the hook that applies it."""
    if kind not in BLOCK_ADAPTER_KINDS:
        raise ValueError(f"block adapter kind must be one of {list(BLOCK_ADAPTER_KINDS)}, got {kind!r}")
    for layer in layers:
        if hasattr(layer, SLOT_NAME) or hasattr(layer, RELU_ADAPTER_NAME):
            raise ValueError("this encoder already has block adapters")
        if kind == "linear":
            setattr(layer, SLOT_NAME, BlockAdapterSlot(hidden_size))
            layer.register_forward_hook(_slot_hook, prepend=True, with_kwargs=True)
        else:
            setattr(layer, RELU_ADAPTER_NAME, ReluBottleneckAdapter(hidden_size, validate_rank(rank, hidden_size)))
            layer.register_forward_hook(_relu_hook, prepend=True, with_kwargs=True)


__all__ = [
    "BLOCK_ADAPTER_KINDS",
    "BlockAdapterSlot",
    "LEGACY_SLOT_TARGET_PATTERNS",
    "ReluBottleneckAdapter",
    "SLOT_NAME",
    "SLOT_TARGET_PATTERN",
    "attach_block_adapters",
    "validate_rank",
]
