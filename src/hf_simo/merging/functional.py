"""Merged encoder parameters as a differentiable function of per-task, per-layer coefficients.

AdaMerging (Yang et al. 2024) and aTLAS (Zhang et al. 2024) learn one coefficient per task and per layer by
back-propagating through theta(C) = theta_0 + sum_t C[t, g(p)] tau_t, g(p) being the layer group of parameter p
(embeddings, each block, the final layernorm: L + 2 groups). This module gives that function, usable with
`torch.func.functional_call`, and an `nn.Module` holding the coefficients as a parameter. The learned coefficients
plug back into `merge`/`merge_to_folder(coefficients=...)`, which reproduce the same weights bit for bit.

Holding T task vectors is inherent to learning coefficients (every step needs all of them), so this is the one
place that keeps them all in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .layers import layer_group, layer_group_names
from .merge_methods import task_vector


def coefficient_groups(keys: Sequence[str], num_layers: int) -> dict[str, int]:
    """Coefficient group (column of C) of each encoder parameter: 0 embeddings, 1..L blocks, L+1 final layernorm."""
    return {key: layer_group(key, num_layers) for key in keys}


def stack_task_vectors(
    base: Mapping[str, torch.Tensor], finetuned: Sequence[Mapping[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """key -> (T, *shape) float32 task vectors of Dinov2 encoder state dicts (keys without the `dinov2.` prefix)."""
    return {key: torch.stack([task_vector(sd[key], base[key]) for sd in finetuned]) for key in sorted(base)}


def functional_merge(
    base: Mapping[str, torch.Tensor],
    task_vectors: Mapping[str, torch.Tensor],
    coefficients: torch.Tensor,
    groups: Mapping[str, int] | None = None,
    *,
    alpha: float = 1.0,
    prefix: str = "",
) -> dict[str, torch.Tensor]:
    """theta(C) = theta_0 + alpha * sum_t C[t, g] tau_t for every encoder parameter, differentiable in C.

    Args:
        base: theta_0 (key -> tensor).
        task_vectors: key -> (T, *shape) task vectors (see `stack_task_vectors`).
        coefficients: (T,) task-wise or (T, G) layer-wise coefficients (G = L + 2).
        groups: key -> column of C (see `coefficient_groups`); required for layer-wise coefficients.
        prefix: prepended to every key, e.g. "dinov2." to call `functional_call` on a whole `SimoModel`.
    """
    if coefficients.dim() == 1:
        coefficients = coefficients[:, None]
        groups = None
    elif groups is None:
        raise ValueError("layer-wise coefficients (T, G) need `groups` (see coefficient_groups)")
    merged = {}
    for key, vectors in task_vectors.items():
        column = coefficients[:, 0 if groups is None else groups[key]]
        if column.shape[0] != vectors.shape[0]:
            raise ValueError(f"{key}: {vectors.shape[0]} task vectors but {column.shape[0]} coefficients")
        total = torch.zeros_like(vectors[0])
        for t in range(vectors.shape[0]):  # sequential, in task order: the same arithmetic as the merge engine
            total = total + column[t].to(vectors.dtype) * vectors[t]
        merged[prefix + key] = base[key].to(vectors.dtype) + alpha * total
    return merged


class LayerwiseMerge(nn.Module):
    """Learnable (T, L+2) merging coefficients over fixed theta_0 and task vectors.

    ```python
    merger = LayerwiseMerge(base_sd, stack_task_vectors(base_sd, task_sds), num_layers=12, init=0.3)
    out = torch.func.functional_call(model, merger(prefix="dinov2."), (pixel_values,), strict=False)
    loss(out).backward()  # gradients in merger.coefficients
    merge_to_folder(..., coefficients=merger.coefficients.detach())  # the same encoder, streamed to disk
    ```
    """

    def __init__(
        self,
        base: Mapping[str, torch.Tensor],
        task_vectors: Mapping[str, torch.Tensor],
        num_layers: int,
        init: float | torch.Tensor = 0.3,
        task_names: Sequence[str] | None = None,
    ):
        super().__init__()
        keys = sorted(task_vectors)
        num_tasks = next(iter(task_vectors.values())).shape[0]
        self.keys = keys
        self.num_layers = num_layers
        self.task_names = list(task_names) if task_names is not None else [str(t) for t in range(num_tasks)]
        self.group_names = layer_group_names(num_layers)
        self.groups = coefficient_groups(keys, num_layers)
        initial = torch.as_tensor(init, dtype=torch.float32)
        self.coefficients = nn.Parameter(initial.expand(num_tasks, num_layers + 2).clone())
        self._base = {key: base[key].detach().to(torch.float32) for key in keys}
        self._vectors = {key: task_vectors[key].detach().to(torch.float32) for key in keys}

    def forward(self, prefix: str = "") -> dict[str, torch.Tensor]:
        return functional_merge(self._base, self._vectors, self.coefficients, self.groups, prefix=prefix)

    def coefficient_dict(self) -> dict[str, list[float]]:
        """task -> its L + 2 coefficients, the mapping form `merge(coefficients=...)` accepts."""
        values = self.coefficients.detach().cpu().double().tolist()
        return dict(zip(self.task_names, values))


__all__ = ["LayerwiseMerge", "coefficient_groups", "functional_merge", "stack_task_vectors"]
