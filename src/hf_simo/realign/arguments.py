"""`RealignArguments`: the re-alignment options of `hf-simo realign` / `recipes/realign.py` (paper sections 3.0.2 and
5). The sources are `SourceArguments`, the merge `MergeMethodArguments`, the data `DataArguments`, the run settings
`RunArguments` (its batch sizes, precision, checkpoints, trackers reach the re-alignment), the Hub
`HubOptions`/`PushOptions`. Plain dataclass, no torch."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import OptionError
from ..merging.arguments import DEFAULT_ALPHA_GRID
from ..utils.fields import option, require_non_negative, require_positive


@dataclass
class RealignArguments:
    """Re-alignment after merging (paper sections 3.0.2 and 5)."""

    mode: str = option("representation", "Re-alignment: head (cached features), representation (adapters) or none.")
    alpha_grid: list[float] = option(list(DEFAULT_ALPHA_GRID), "α values tried when --alpha is not given.")
    rank: int = option(16, "Adapter rank (the paper: 16).")
    adapter: str = option("lora", "lora (block(x) + BAx through PEFT) or relu (the authors' code variant).")
    lora_target_modules: list[str] | None = option(
        None, "Instead of block adapters, a standard LoRA on these modules (e.g. q_proj k_proj v_proj o_proj fc1 fc2)."
    )
    learning_rate: float = option(1e-3, "Representation re-alignment peak learning rate (adapters and heads).")
    num_train_epochs: int = option(30, "Representation re-alignment epochs over the re-alignment samples.")
    early_stopping_patience: int | None = option(
        5, "Early-stopping patience (epochs) on the held-out part of the validation split."
    )
    head_learning_rate: float = option(1e-3, "Head re-alignment peak learning rate.")
    head_epochs: int = option(50, "Head re-alignment epochs (on cached features: cheap).")
    head_weight_decay: float = option(1e-4, "Head re-alignment AdamW weight decay.")
    heldout_fraction: float = option(0.2, "Part of the validation split kept for early stopping.")
    feature_cache_dtype: str = option(
        "float32",
        "Storage dtype of head re-alignment's feature cache: float32, bfloat16 or float16 (half the size on disk; "
        "the heads read float32).",
    )

    def __post_init__(self) -> None:
        check_arguments(self)  # at argument parsing: a bad value fails before any merging or training


FEATURE_CACHE_DTYPE_NAMES = ("float32", "bfloat16", "float16")  # hf_simo.realign.feature_cache's, without torch

# old spellings, refused with exit 2 naming the new option (with RunArguments' `RUN_RENAMED`)
REALIGN_RENAMED = {
    "num_epochs": "--num_train_epochs",
    "patience": "--early_stopping_patience",
    "realign_samples": "--max_eval_samples",
    "eval_batch_size": "--per_device_eval_batch_size",
}


def check_arguments(args: RealignArguments) -> None:
    """Fail before any training or merging on arguments that cannot work; every message names the option."""
    if args.mode not in ("head", "representation", "none"):
        raise OptionError(f"--mode must be head, representation or none, got {args.mode!r}")
    if args.adapter not in ("lora", "relu"):
        raise OptionError(f"--adapter must be lora or relu, got {args.adapter!r}")
    if isinstance(args.rank, bool) or not isinstance(args.rank, int) or args.rank < 1:
        raise OptionError(f"--rank must be a positive integer (the paper uses 16), got {args.rank!r}")
    if args.feature_cache_dtype not in FEATURE_CACHE_DTYPE_NAMES:
        names = ", ".join(FEATURE_CACHE_DTYPE_NAMES)
        raise OptionError(f"--feature_cache_dtype must be one of {names}, got {args.feature_cache_dtype!r}")
    if not 0.0 <= args.heldout_fraction < 1.0:
        raise OptionError(f"--heldout_fraction must be in [0, 1), got {args.heldout_fraction}")
    bad = [a for a in args.alpha_grid or [] if not (math.isfinite(a) and a >= 0)]
    if bad:
        raise OptionError(f"--alpha_grid must hold finite numbers >= 0, got {bad}")
    require_positive(args, "num_train_epochs", "head_epochs")
    require_positive(args, "early_stopping_patience", optional=True)
    require_positive(args, "learning_rate", "head_learning_rate", integer=False)
    require_non_negative(args, "head_weight_decay", integer=False)


__all__ = ["FEATURE_CACHE_DTYPE_NAMES", "REALIGN_RENAMED", "RealignArguments", "check_arguments"]
