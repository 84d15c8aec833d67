"""Per-task, per-layer merge coefficients: the coefficient groups of an encoder (embeddings, each block, final
layernorm; any family of `hf_simo.encoder_families`) and the coefficients a user gives (a number, [T], [T, L+2], a mapping task -> ...) as a T x G table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..encoder_families import block_index
from ..errors import MergeOptionError


def layer_group(key: str, num_layers: int) -> int:
    """Coefficient group of an encoder parameter: 0 = embeddings, 1..L = block l-1, L+1 = final layernorm."""
    index = block_index(key)  # `encoder.layer.<i>.` (DINOv2 families) or `model.layer.<i>.` (DINOv3)
    if index is not None:
        if not 0 <= index < num_layers:
            raise ValueError(f"{key}: block index {index} outside [0, {num_layers})")
        return index + 1
    if key.startswith("embeddings."):
        return 0
    return num_layers + 1


def layer_group_names(num_layers: int) -> list[str]:
    return ["embeddings"] + [f"layer.{i}" for i in range(num_layers)] + ["layernorm"]


def resolve_coefficients(coefficients: Any, task_names: Sequence[str], num_groups: int) -> list[list[float]] | None:
    """Per-task, per-group weights as a T x G list, from None, a number, a [T] or [T, G] sequence/tensor, or a
    mapping task -> number | [G]. G = num_layers + 2 (embeddings, each block, final layernorm)."""
    if coefficients is None:
        return None
    num_tasks = len(task_names)
    if isinstance(coefficients, Mapping):
        unknown = sorted(set(coefficients) - set(task_names))
        missing = [t for t in task_names if t not in coefficients]
        if unknown or missing:
            raise MergeOptionError(
                f"coefficients must name exactly the tasks {list(task_names)}; unknown {unknown}, missing {missing}"
            )
        coefficients = [coefficients[t] for t in task_names]
    if isinstance(coefficients, torch.Tensor):
        coefficients = coefficients.detach().cpu().double().tolist()
    if isinstance(coefficients, (int, float)) and not isinstance(coefficients, bool):
        coefficients = [coefficients] * num_tasks
    if not isinstance(coefficients, Sequence) or len(coefficients) != num_tasks:
        raise MergeOptionError(f"coefficients must have one entry per task ({num_tasks}), got {coefficients!r}")
    rows = []
    for task, row in zip(task_names, coefficients):
        if isinstance(row, torch.Tensor):
            row = row.detach().cpu().double().tolist()
        if isinstance(row, (int, float)) and not isinstance(row, bool):
            row = [row] * num_groups
        if not isinstance(row, Sequence) or len(row) != num_groups:
            raise MergeOptionError(
                f"coefficients for task {task!r} must be a number or {num_groups} per-layer values "
                f"(embeddings, {num_groups - 2} blocks, final layernorm), got {row!r}"
            )
        values = []
        for value in row:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise MergeOptionError(f"coefficients for task {task!r} must be finite numbers, got {value!r}")
            values.append(float(value))
        rows.append(values)
    return rows


__all__ = ["layer_group", "layer_group_names", "resolve_coefficients"]
