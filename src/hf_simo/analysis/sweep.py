"""The task-relationship sweep as a job (paper section 6.4): load θ_0 with every head, the task vectors and the
single-task values, then sweep θ_0 + λ·τ_t for every task (`hf_simo.analysis.relationships.sweep_task_vectors`).

`run_relationships` is what `hf-simo relationships` runs; `relationship_inputs` is shared with the demo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..evaluation import evaluate, primary_values, simo_batches
from ..merging import DEFAULT_MAX_RELATIVE_DISTANCE
from ..modeling_simo import SimoModel
from .relationships import sweep_task_vectors


@dataclass
class RelationshipInputs:
    """What a task-relationship sweep needs: θ_0 with every head, the task vectors and the single-task values."""

    model: SimoModel
    base_state: dict[str, torch.Tensor]
    task_vectors: dict[str, dict[str, torch.Tensor]]
    baselines: dict[str, float]


def relationship_inputs(
    sources: Mapping[str, str],
    batches: Sequence[Mapping[str, Any]],
    *,
    base: str | None = None,
    max_relative_distance: float | None = DEFAULT_MAX_RELATIVE_DISTANCE,
    progress: bool = True,
) -> RelationshipInputs:
    """Load θ_0 (with every checkpoint's head attached: a merge with α = 0), the task vectors τ_t = θ_t − θ_0 and
    each single-task model's value on `batches` (the normalization of the sweep)."""
    from ..merging import merge

    tasks = [f"{n}={s}" for n, s in sources.items()]
    model = merge(
        tasks, base, "task_arithmetic", alpha=0.0, max_relative_distance=max_relative_distance, progress=progress
    )
    base_state = {k: v.detach().clone() for k, v in model.dinov2.state_dict().items()}
    task_vectors, baselines = {}, {}
    for name, source in sources.items():
        single = SimoModel.from_pretrained(source).eval()
        own = single.task_names[0] if len(single.task_names) == 1 else name
        encoder = single.dinov2.state_dict()
        task_vectors[name] = {k: encoder[k] - base_state[k] for k in base_state if base_state[k].is_floating_point()}
        renamed = [{"pixel_values": b["pixel_values"], "labels": {own: b["labels"][name]}} for b in batches]
        baselines[name] = primary_values(single, evaluate(single, renamed, [own]))[own]
    return RelationshipInputs(model.eval(), base_state, task_vectors, baselines)


def run_relationships(
    task_checkpoints: Sequence[str],
    *,
    base: str | None = None,
    dataset: str = "nyuv2",
    dataset_path: str | None = None,
    image_size: int = 64,
    samples: int = 200,
    lambdas: Sequence[float] | None = None,
    batch_size: int = 64,
    max_relative_distance: float | None = DEFAULT_MAX_RELATIVE_DISTANCE,
    progress: bool = True,
):
    """The `hf-simo relationships` sweep on a dataset's validation split; returns (RelationshipResult, files)."""
    from ..data import load_training_data
    from ..merging import parse_task_sources

    sources = parse_task_sources(task_checkpoints)
    data = load_training_data(
        dataset, dataset_path=dataset_path, image_size=image_size, validation_samples=samples, train_samples=0
    )
    batches = simo_batches(data["validation"], list(sources), batch_size, limit=samples)
    inputs = relationship_inputs(
        sources, batches, base=base, max_relative_distance=max_relative_distance, progress=progress
    )
    result = sweep_task_vectors(
        inputs.model, inputs.base_state, inputs.task_vectors, lambdas, batches, inputs.baselines, progress=progress
    )
    return result, []


__all__ = ["RelationshipInputs", "relationship_inputs", "run_relationships"]
