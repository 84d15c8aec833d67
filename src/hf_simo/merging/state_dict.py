"""`merge_state_dicts`: the direct, in-memory merge of encoder state dicts (the reference the streaming merge
is held to, bitwise)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..encoder_families import block_index
from ..errors import CheckpointError
from .io.sources import canonical_encoder_keys
from .layers import layer_group, resolve_coefficients
from .merge_methods import (
    apply_task_vector,
    final_scale,
    lines_auto_alpha,
    merge_task_vectors,
    resolve_method,
    squared_norm,
    task_arithmetic,
    task_vector,
    trim_scope,
    validate_alpha,
)


def merge_state_dicts(
    base: Mapping[str, torch.Tensor],
    finetuned: Sequence[Mapping[str, torch.Tensor]] | Mapping[str, Mapping[str, torch.Tensor]],
    method: str = "task_arithmetic",
    options: Mapping[str, Any] | None = None,
    *,
    alpha: float = 1.0,
    coefficients: Any = None,
    num_layers: int | None = None,
    return_task_vector: bool = False,
) -> dict[str, torch.Tensor]:
    """Merge Dinov2 encoder state dicts held in memory: the direct (non-streaming) path, float32 outputs.

    Global-scope methods run on the flattened encoder (keys in sorted order, as the TIES reference flattens a state
    dict), so thresholds come from `kthvalue` over the whole vector and the zero-sign majority from all entries.
    The streaming engine gives bitwise identical results; tests hold it to that.

    `finetuned` is a list (tasks named "0", "1", ...) or a mapping task name -> state dict: DARE keys its masks by
    task name and canonical tensor name, so give the tasks' names to reproduce a streamed DARE merge. Keys may be
    spelled as stored (transformers-4 names, a `dinov2.` prefix, SwiGLU `weights_in`); the merge runs on the
    canonical names and the result has the base's keys.
    """
    method, options = resolve_method(method, options)
    alpha = validate_alpha(alpha)
    if isinstance(finetuned, Mapping):
        task_names, finetuned = [str(name) for name in finetuned], list(finetuned.values())
    else:
        task_names = [str(t) for t in range(len(finetuned))]
    spelling = {key: _canonical_names(key) for key in base}
    for index, state_dict in enumerate(finetuned):
        if sorted(state_dict) != sorted(base):
            raise CheckpointError(f"fine-tuned state dict {task_names[index]!r} does not have the base's keys")
    merged = _merge_canonical(
        _canonical(base, spelling),
        [_canonical(sd, spelling) for sd in finetuned],
        task_names,
        method,
        options,
        alpha,
        coefficients,
        num_layers,
        return_task_vector,
    )
    out = {}
    for key, names in spelling.items():
        parts = [merged[name] for name, _ in names]
        out[key] = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
    return out


def _canonical_names(key: str) -> list[tuple[str, int | None]]:
    return canonical_encoder_keys(key[len("dinov2.") :] if key.startswith("dinov2.") else key)


def _canonical(state_dict: Mapping[str, torch.Tensor], spelling) -> dict[str, torch.Tensor]:
    out = {}
    for key, names in spelling.items():
        for name, chunk in names:
            value = state_dict[key]
            out[name] = value if chunk is None else value.chunk(2, dim=0)[chunk].contiguous()
    return out


def _merge_canonical(
    base, finetuned, task_names, method, options, alpha, coefficients, num_layers, return_task_vector
) -> dict[str, torch.Tensor]:
    keys = sorted(base)
    if num_layers is None:
        blocks = {block_index(k) for k in keys} - {None}
        num_layers = max(blocks) + 1 if blocks else 0
    groups = {k: layer_group(k, num_layers) for k in keys}
    rows = resolve_coefficients(coefficients, task_names, num_layers + 2)
    vectors = {k: [task_vector(sd[k], base[k]) for sd in finetuned] for k in keys}

    def weights_for(key: str) -> list[float] | None:
        return None if rows is None else [row[groups[key]] for row in rows]

    merged: dict[str, torch.Tensor] = {}
    if trim_scope(method, options) == "global":
        flat = [torch.cat([vectors[k][t].reshape(-1) for k in keys]) for t in range(len(finetuned))]
        flat_weights = None
        if rows is not None:
            flat_weights = [
                torch.cat([torch.full((vectors[k][t].numel(),), row[groups[k]]) for k in keys])
                for t, row in enumerate(rows)
            ]
        result = merge_task_vectors(method, options, flat, flat_weights)
        offset = 0
        for k in keys:
            numel = base[k].numel()
            merged[k] = result[offset : offset + numel].reshape(base[k].shape).clone()
            offset += numel
    else:
        for k in keys:
            merged[k] = merge_task_vectors(method, options, vectors[k], weights_for(k), key=k, tasks=task_names)
    if return_task_vector:
        return merged
    lines_alpha = None
    if method == "lines":
        lines_alpha = options["lines_alpha"]
        if lines_alpha is None:
            sum_sq = sum(squared_norm(task_arithmetic(vectors[k])) for k in keys)
            merged_sq = sum(squared_norm(merged[k]) for k in keys)
            lines_alpha = lines_auto_alpha(sum_sq, merged_sq, len(finetuned))
    return {
        k: apply_task_vector(
            base[k], merged[k], final_scale(method, options, alpha, groups[k], num_layers, lines_alpha)
        )
        for k in keys
    }


__all__ = ["merge_state_dicts"]
