"""Checks on the sources and the merged result that need no I/O of their own (they read through `Checkpoint`):
unique task names, one encoder architecture, finite tensors, and the provenance check (each task encoder's distance
to the base, `check_fine_tuned`)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ..errors import CheckpointError, NotFineTunedError
from .arguments import DEFAULT_MAX_RELATIVE_DISTANCE


if TYPE_CHECKING:
    from .io.sources import Checkpoint


# Encoder config fields that must agree for task vectors to make sense.
ARCHITECTURE_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "mlp_ratio",
    "use_swiglu_ffn",
    "patch_size",
    "num_channels",
    "qkv_bias",
    "hidden_act",
    "layer_norm_eps",
    "num_register_tokens",  # DINOv2 with registers, DINOv3
    "intermediate_size",  # DINOv3 (DINOv2 families size the MLP with mlp_ratio)
    "use_gated_mlp",
    "rope_theta",  # DINOv3's rotary position embedding: same shapes, another encoder
)


def check_unique_tasks(tasks: list[Checkpoint]) -> None:
    seen: dict[str, list[str]] = {}
    for checkpoint in tasks:
        seen.setdefault(checkpoint.task, []).append(checkpoint.name_or_path)
    duplicates = {name: where for name, where in seen.items() if len(where) > 1}
    if duplicates:
        name, where = next(iter(duplicates.items()))
        raise CheckpointError(
            f"task name {name!r} is used by {len(where)} checkpoints ({', '.join(where)}); give each a distinct name, "
            f"e.g. --task_checkpoints {name}_2={where[1]} (Python: TaskSource(..., task='{name}_2'))"
        )
    for checkpoint in tasks:
        if not checkpoint.task.isidentifier():
            raise CheckpointError(
                f"task name {checkpoint.task!r} must be an identifier (letters, digits, underscores)"
            )


def check_architecture(reference: Checkpoint, other: Checkpoint) -> None:
    """Same encoder family, the same architecture (config fields) and the same tensors with the same shapes."""
    mine, theirs = reference.backbone_config.model_type, other.backbone_config.model_type
    if mine != theirs:
        raise CheckpointError(
            f"{other.describe()} has a {theirs!r} encoder, {reference.describe()} a {mine!r} one: task vectors "
            "exist only between encoders of one family (hf_simo.encoder_families); merge checkpoints fine-tuned "
            f"from the same {mine!r} base"
        )
    for name in ARCHITECTURE_FIELDS:
        mine, theirs = getattr(reference.backbone_config, name, None), getattr(other.backbone_config, name, None)
        if mine != theirs:
            raise CheckpointError(
                f"{other.describe()}: encoder {name} is {theirs!r}, {reference.describe()} has {mine!r}; checkpoints "
                "must share the base encoder's architecture"
            )
    missing = sorted(set(reference.encoder) - set(other.encoder))
    extra = sorted(set(other.encoder) - set(reference.encoder))
    if missing:
        raise CheckpointError(
            f"{other.describe()} is missing encoder tensor(s) {missing[:5]}{' ...' if len(missing) > 5 else ''} that "
            f"{reference.describe()} has"
        )
    if extra:
        raise CheckpointError(
            f"{other.describe()} has encoder tensor(s) {extra[:5]}{' ...' if len(extra) > 5 else ''} that "
            f"{reference.describe()} does not have"
        )
    for key in reference.encoder:
        ref_dtype, ref_shape = reference.encoder_info(key)
        dtype, shape = other.encoder_info(key)
        if shape != ref_shape:
            raise CheckpointError(
                f"{other.describe()}: tensor {key!r} has shape {list(shape)}, "
                f"{reference.describe()} has {list(ref_shape)}"
            )
        if not dtype.is_floating_point:
            raise CheckpointError(f"{other.describe()}: encoder tensor {key!r} has non-float dtype {dtype}")


def check_finite(checkpoint: Checkpoint, key: str, tensor: torch.Tensor) -> None:
    if not torch.isfinite(tensor).all():
        bad = "NaN" if torch.isnan(tensor).any() else "inf"
        raise CheckpointError(f"{checkpoint.describe()}: tensor {key!r} contains {bad}; the checkpoint is corrupted")


def _squared(checkpoint: Checkpoint, key: str, tensor: torch.Tensor) -> float:
    """||x||^2 of a float32 tensor (BLAS dot, accumulated in float64 across tensors), which also detects NaN/inf."""
    flat = tensor.reshape(-1)
    value = float(torch.dot(flat, flat))
    if not math.isfinite(value):
        check_finite(checkpoint, key, tensor)  # names NaN or inf; passes only if the square merely overflowed
    return value


@dataclass
class DistanceStats:
    """Accumulates, over the encoder's weight tensors (ndim >= 2: projections, patch embedding, position embedding,
    CLS/mask tokens), ||theta_0||^2, ||theta_t||^2, ||tau_t||^2 and <theta_0, theta_t>; and ||tau_t||^2 over every
    tensor. Every tensor is checked for NaN/inf on the way.

    Norms, biases and layer scales are left out of the distance: they start from constants (1 or 0) in any
    initialisation, so they would make two unrelated encoders look close.
    """

    num_tasks: int
    base_sq: float = 0.0
    tau_sq: list[float] = field(default_factory=list)
    tau_sq_all: list[float] = field(default_factory=list)
    dot: list[float] = field(default_factory=list)
    finetuned_sq: list[float] = field(default_factory=list)

    def __post_init__(self):
        self.tau_sq = [0.0] * self.num_tasks
        self.tau_sq_all = [0.0] * self.num_tasks
        self.dot = [0.0] * self.num_tasks
        self.finetuned_sq = [0.0] * self.num_tasks

    def add_base(self, checkpoint: Checkpoint, key: str, base: torch.Tensor) -> None:
        squared = _squared(checkpoint, key, base)
        if base.dim() >= 2:
            self.base_sq += squared

    def add_task(
        self, index: int, checkpoint: Checkpoint, key: str, base: torch.Tensor, finetuned: torch.Tensor
    ) -> None:
        squared = _squared(checkpoint, key, finetuned)
        if finetuned.dim() >= 2:
            self.finetuned_sq[index] += squared
            self.dot[index] += float(torch.dot(base.reshape(-1), finetuned.reshape(-1)))

    def add_task_vector(self, index: int, tau: torch.Tensor) -> None:
        flat = tau.reshape(-1)
        squared = float(torch.dot(flat, flat))
        self.tau_sq_all[index] += squared
        if tau.dim() >= 2:
            self.tau_sq[index] += squared

    def relative_distance(self, index: int) -> float:
        return (self.tau_sq[index] ** 0.5) / max(self.base_sq**0.5, 1e-30)

    def cosine(self, index: int) -> float:
        return self.dot[index] / max((self.base_sq * self.finetuned_sq[index]) ** 0.5, 1e-30)


def check_fine_tuned(
    tasks: list[Checkpoint],
    stats: DistanceStats,
    max_relative_distance: float | None = DEFAULT_MAX_RELATIVE_DISTANCE,
) -> dict[str, dict[str, float]]:
    """Refuse task encoders that do not look fine-tuned from the base; return the distances for the record.

    Criterion: the relative distance ||theta_t - theta_0|| / ||theta_0|| over the encoder's weight tensors (see
    `DistanceStats`). Fine-tuning a large pre-trained ViT moves it by a few percent (typically 1e-3 to 5e-2); a small
    or briefly pre-trained encoder moves more (the embedded benchmark's: about 0.3-0.6, cosine to the base above
    0.8). An encoder trained from another initialisation, or fine-tuned from another base of the same architecture,
    sits near sqrt(2) ~ 1.4 (unrelated weights of similar norm) or beyond, where task vectors are meaningless. The
    default threshold, 1.0 (a task vector as large as the base itself), separates the two.
    `max_relative_distance=None` only warns.
    """
    report = {}
    for index, checkpoint in enumerate(tasks):
        distance, cosine = stats.relative_distance(index), stats.cosine(index)
        report[checkpoint.task] = {"relative_distance": distance, "cosine_to_base": cosine}
        if stats.tau_sq_all[index] == 0.0:
            warnings.warn(
                f"{checkpoint.describe()}: the encoder is identical to the base (zero task vector); only its head "
                "contributes to the merge",
                stacklevel=3,
            )
        elif max_relative_distance is not None and distance > max_relative_distance:
            raise NotFineTunedError(
                f"{checkpoint.describe()} does not look fine-tuned from the base: "
                f"||theta_t - theta_0|| / ||theta_0|| = {distance:.3g} (cosine {cosine:.3g}) over the weight "
                f"matrices, above the {max_relative_distance} limit (fine-tuning gives ~1e-3..0.6; unrelated encoders ~1.4). "
                "Check --base_model, or "
                "pass max_relative_distance=None (CLI: --allow-distant) to merge anyway"
            )
        elif max_relative_distance is None and distance > DEFAULT_MAX_RELATIVE_DISTANCE:
            warnings.warn(
                f"{checkpoint.describe()}: relative distance to the base is {distance:.3g}; it may not be fine-tuned "
                "from this base",
                stacklevel=3,
            )
    return report


__all__ = [
    "ARCHITECTURE_FIELDS",
    "DistanceStats",
    "check_architecture",
    "check_fine_tuned",
    "check_finite",
    "check_unique_tasks",
]
