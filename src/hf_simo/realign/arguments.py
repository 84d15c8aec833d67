"""`RealignArguments`: the merging and re-alignment options of `hf-simo realign` / `recipes/realign.py` (paper
sections 3.0.2 and 5); the data and run options are `DataArguments` and `RunArguments`. Plain dataclass, no torch."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import OptionError
from ..merging.arguments import DEFAULT_ALPHA_GRID
from ..utils.fields import option, require_positive


@dataclass
class RealignArguments:
    """Merging and re-alignment (paper sections 3.0.2 and 5)."""

    mode: str = option("representation", "Re-alignment: head (cached features), representation (adapters) or none.")
    task_checkpoints: list[str] | None = option(
        None,
        "Single-task SimoModel checkpoints, [NAME=]SOURCE[@REVISION] (Hub ids or folders). Default: the embedded "
        "benchmark's, trained with recipes/finetune.py on first use.",
    )
    base_model: str | None = option(None, "θ_0 (default: the base recorded in the checkpoints).")
    merge_method: str = option(
        "task_arithmetic", "task_arithmetic, ties, dare, breadcrumbs, magnitude, consensus, lines."
    )
    merge_options: str | None = option(None, "Method options as JSON (a mapping in YAML), e.g. '{\"density\": 0.2}'.")
    alpha: float | None = option(None, "Merge scaling α; default: tuned on the validation split over --alpha_grid.")
    alpha_grid: list[float] = option(list(DEFAULT_ALPHA_GRID), "α values tried when --alpha is not given.")
    allow_distant: bool = option(
        False,
        "Only warn (instead of refusing) when a task encoder is farther from the base than fine-tuning moves it.",
    )
    rank: int = option(16, "Adapter rank (the paper: 16).")
    adapter: str = option("lora", "lora (block(x) + BAx through PEFT) or relu (the authors' code variant).")
    lora_target_modules: list[str] | None = option(
        None, "Instead of block adapters, a standard LoRA on these modules (e.g. q_proj k_proj v_proj o_proj fc1 fc2)."
    )
    learning_rate: float = option(1e-3, "Representation re-alignment peak learning rate (adapters and heads).")
    num_epochs: int = option(30, "Representation re-alignment epochs over the re-alignment samples.")
    patience: int | None = option(5, "Early-stopping patience (epochs) on the held-out part of the validation split.")
    head_learning_rate: float = option(1e-3, "Head re-alignment peak learning rate.")
    head_epochs: int = option(50, "Head re-alignment epochs (on cached features: cheap).")
    heldout_fraction: float = option(0.2, "Part of the validation split kept for early stopping.")
    realign_samples: int | None = option(None, "Use only the first N validation samples (data-efficiency studies).")
    eval_batch_size: int = option(64, "Evaluation batch size.")

    def __post_init__(self) -> None:
        check_arguments(self)  # at argument parsing: a bad value fails before any merging or training


def check_arguments(args: RealignArguments) -> None:
    """Fail before any training or merging on arguments that cannot work; every message names the option."""
    if args.mode not in ("head", "representation", "none"):
        raise OptionError(f"--mode must be head, representation or none, got {args.mode!r}")
    if args.adapter not in ("lora", "relu"):
        raise OptionError(f"--adapter must be lora or relu, got {args.adapter!r}")
    if isinstance(args.rank, bool) or not isinstance(args.rank, int) or args.rank < 1:
        raise OptionError(f"--rank must be a positive integer (the paper uses 16), got {args.rank!r}")
    if not 0.0 <= args.heldout_fraction < 1.0:
        raise OptionError(f"--heldout_fraction must be in [0, 1), got {args.heldout_fraction}")
    if args.alpha is not None and not (math.isfinite(args.alpha) and args.alpha >= 0):
        raise OptionError(f"--alpha must be a finite number >= 0, got {args.alpha}")
    if args.alpha is None and not args.alpha_grid:
        raise OptionError("--alpha_grid is empty; give α values to search or a fixed --alpha")
    bad = [a for a in args.alpha_grid or [] if not (math.isfinite(a) and a >= 0)]
    if args.alpha is None and bad:
        raise OptionError(f"--alpha_grid must hold finite numbers >= 0, got {bad}")
    require_positive(args, "num_epochs", "head_epochs", "eval_batch_size")
    require_positive(args, "patience", "realign_samples", optional=True)
    require_positive(args, "learning_rate", "head_learning_rate", integer=False)


__all__ = ["RealignArguments", "check_arguments"]
