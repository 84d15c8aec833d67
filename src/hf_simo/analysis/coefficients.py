"""Per-layer, per-task merging coefficients learned by back-propagation (paper Figure 2, AdaMerging/aTLAS style).

The merged encoder θ(C) = θ_0 + Σ_t C[t, g] τ_t (g: embeddings, each block, the final layernorm) is computed by the
merge engine's differentiable form (`hf_simo.merging.LayerwiseMerge`) and plugged into the model with
`torch.func.functional_call`; only C learns, on the multi-task loss of the validation set, every head attached and
frozen. The learned C plugs back into `merge(..., coefficients=...)`, which rebuilds the same encoder, and
`hf_simo.analysis.plots.plot_layer_coefficients` draws it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ..losses import task_loss
from ..merging import LayerwiseMerge, stack_task_vectors
from ..modeling_simo import SimoModel
from ..utils.logging import progress_bar


@dataclass
class LayerCoefficients:
    """Learned coefficients: task -> one value per group (embeddings, block 1..L, final layernorm)."""

    coefficients: dict[str, list[float]]
    group_names: list[str]
    losses: list[float] = field(default_factory=list)

    def blocks(self) -> dict[str, list[float]]:
        """task -> the L block coefficients (what Figure 2 plots against the layer index)."""
        return {task: values[1:-1] for task, values in self.coefficients.items()}


def encoder_state(model_or_state: SimoModel | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder tensors (keys without `dinov2.`) of a `SimoModel` or of a state dict."""
    if isinstance(model_or_state, SimoModel):
        return {k: v.detach().clone() for k, v in model_or_state.dinov2.state_dict().items()}
    return {k.removeprefix("dinov2."): v for k, v in model_or_state.items() if not k.startswith("heads.")}


def learn_layer_coefficients(
    model: SimoModel,
    base: Mapping[str, torch.Tensor],
    finetuned: Mapping[str, Mapping[str, torch.Tensor]],
    batches: Sequence[Mapping],
    *,
    init: float = 0.3,
    steps: int = 100,
    learning_rate: float = 1e-2,
) -> LayerCoefficients:
    """Learn C (T × (L+2)) minimising the unweighted mean task loss of `model`'s heads on `batches`.

    Args:
        model: a `SimoModel` holding every task's head (its encoder weights are not used: θ(C) replaces them).
        base: θ_0 encoder tensors; finetuned: task -> θ_t encoder tensors (see `encoder_state`).
        batches: `{"pixel_values", "labels": {task: ...}}`, cycled for `steps` Adam steps (a progress bar counts
            them: `hf_simo.utils.logging.progress_bar`).
    """
    if not batches:
        raise ValueError("no batches to learn the coefficients on")
    tasks = list(finetuned)
    unknown = [t for t in tasks if t not in model.task_names]
    if unknown:
        raise KeyError(f"the model has no head for task(s) {unknown}; it has {model.task_names}")
    missing = [t for t in tasks if t not in batches[0]["labels"]]
    if missing:
        raise KeyError(f"the batches have no labels for task(s) {missing}")
    base = {k: v.float() for k, v in base.items() if v.is_floating_point()}
    vectors = stack_task_vectors(base, [{k: finetuned[t][k] for k in base} for t in tasks])
    merger = LayerwiseMerge(base, vectors, model.config.backbone_config.num_hidden_layers, init=init, task_names=tasks)
    specs = {t: model.config.get_task(t) for t in tasks}
    was_training = model.training
    model.eval()  # BatchNorm statistics and dropout of the frozen heads stay put
    requires_grad = {n: p.requires_grad for n, p in model.named_parameters()}
    model.requires_grad_(False)
    optimizer = torch.optim.Adam(merger.parameters(), lr=learning_rate)
    losses = []
    try:
        for step in progress_bar(range(steps), desc="Learning layer coefficients"):
            batch = batches[step % len(batches)]
            params = merger(prefix="dinov2.")
            out = torch.func.functional_call(model, params, (batch["pixel_values"],), {"tasks": tasks}, strict=False)
            loss = torch.stack([task_loss(specs[t], out.predictions[t], batch["labels"][t]) for t in tasks]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    finally:
        for name, param in model.named_parameters():
            param.requires_grad_(requires_grad[name])
        model.train(was_training)
    return LayerCoefficients(merger.coefficient_dict(), list(merger.group_names), losses)


__all__ = ["LayerCoefficients", "encoder_state", "learn_layer_coefficients"]
