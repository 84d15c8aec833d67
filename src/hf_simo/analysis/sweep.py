"""The task-relationship sweep (paper section 6.4): θ_0 + λ·τ_t for every task vector and λ of the grid, evaluated
with every head attached (`sweep_task_vectors`), and the same as a job over checkpoints: load θ_0 with every head,
the task vectors and the single-task values (`relationship_inputs`), then sweep (`run_relationships`, what
``hf-simo relationships`` runs). The results, the T×T matrix and the report are `hf_simo.analysis.relationships`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..data import DataArguments
from ..evaluation import check_batch, evaluate, primary_values, simo_batches
from ..hub import HubOptions, split_revision
from ..merging import DEFAULT_MAX_RELATIVE_DISTANCE, SourceArguments
from ..modeling_simo import SimoModel
from ..utils.logging import progress_bar
from ..weights import canonical_key
from .arguments import RelationshipsArguments
from .relationships import RelationshipResult, check_lambda_grid


def _encoder_name(key: str) -> str:
    """Module name of an encoder tensor inside `model.dinov2` (accepts SimoModel keys and legacy DINOv2 names)."""
    if key.startswith("dinov2."):
        key = key[len("dinov2.") :]
    return canonical_key(key)


def check_encoder_state(
    name: str, state: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor], *, complete: bool
) -> dict[str, torch.Tensor]:
    """Map `state` onto the encoder's parameter names; refuse unknown keys, wrong shapes and, if `complete`, gaps."""
    if not isinstance(state, Mapping):
        raise TypeError(f"{name} must be a mapping of tensor name -> tensor, got {type(state).__name__}")
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in state.items():
        if key.startswith("heads."):
            continue  # a full SimoModel state dict: the heads stay those of the model
        mapped = _encoder_name(key)
        if mapped not in params:
            unknown.append(key)
            continue
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name}[{key!r}] must be a tensor, got {type(tensor).__name__}")
        if tuple(tensor.shape) != tuple(params[mapped].shape):
            raise ValueError(
                f"{name}[{key!r}] has shape {list(tensor.shape)}, the encoder parameter {mapped!r} has "
                f"{list(params[mapped].shape)}"
            )
        out[mapped] = tensor
    if unknown:
        raise KeyError(
            f"{name} has tensor(s) that are not parameters of the model's encoder: {unknown[:5]}"
            f"{' ...' if len(unknown) > 5 else ''}"
        )
    if complete:
        missing = [k for k in params if k not in out]
        if missing:
            raise KeyError(
                f"{name} lacks encoder parameter(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}; pass the full "
                "state dict of the pre-trained encoder θ_0"
            )
    elif not out:
        raise ValueError(f"{name} holds no encoder tensor")
    return out


def reiterable_batches(batches: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    """Batches are read once per grid point: a one-shot iterator (a generator) is materialised into a list."""
    if batches is None:
        raise TypeError("batches must be an iterable of {'pixel_values', 'labels'} dicts, got None")
    if iter(batches) is batches:
        return list(batches)
    return batches


def check_baselines(
    baselines: Mapping[str, float], metric_names: Mapping[str, str], name: str = "baselines"
) -> dict[str, float]:
    """Every task of `metric_names` has a positive finite single-task value in `baselines` (the normalization)."""
    missing = [task for task in metric_names if task not in baselines]
    if missing:
        raise KeyError(f"no single-task baseline for task(s) {missing}; {name} has {sorted(baselines)}")
    for task, metric in metric_names.items():
        value = baselines[task]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"the baseline of task {task!r} must be a positive finite {metric} value, got {value!r}")
    return {task: float(baselines[task]) for task in metric_names}


@torch.no_grad()
def set_encoder_weights(
    params: Mapping[str, torch.nn.Parameter],
    base: Mapping[str, torch.Tensor],
    vector: Mapping[str, torch.Tensor] | None,
    lam: float,
) -> None:
    """θ = θ_0 + λ·τ in float32, copied into the parameters (no new Parameter objects, no optimizer state lost)."""
    for name, param in params.items():
        value = base[name]
        if vector is not None and lam != 0 and name in vector:
            value = torch.add(value, vector[name], alpha=lam)
        param.copy_(value)


@torch.no_grad()
def sweep_task_vectors(
    model,
    base_state: Mapping[str, torch.Tensor],
    task_vectors: Mapping[str, Mapping[str, torch.Tensor]],
    lambdas: Sequence[float] | None,
    batches: Iterable[Mapping[str, Any]],
    baselines: Mapping[str, float],
    *,
    tasks: Sequence[str] | None = None,
) -> RelationshipResult:
    """Evaluate every task of `model` on θ_0 + λ·τ_t for each task vector τ_t and each λ.

    Args:
        model: a `SimoModel` holding every task's fine-tuned head; its encoder weights are overwritten during the
            sweep and restored afterwards (also on error).
        base_state: the pre-trained encoder θ_0: `model.dinov2` state dict (keys with or without the `dinov2.`
            prefix; legacy DINOv2 names accepted; `heads.*` keys ignored). Must cover every encoder parameter.
        task_vectors: primary task -> τ_t = θ_t − θ_0 (any subset of encoder tensors; others are left at θ_0).
        lambdas: the λ grid (None: `DEFAULT_LAMBDAS`); sorted ascending, must not be empty.
        batches: re-iterable batches `{"pixel_values": (B, 3, H, W) normalized, "labels": {task: tensor}}` (a list
            or a DataLoader; a generator is materialised). Iterated once for θ_0 and once per (task vector, λ ≠ 0).
        baselines: task -> single-task value of its primary metric (`config.tasks[task]["metric"]`).
        tasks: tasks to evaluate (default: every head of `model`).

    A progress bar counts the grid points (`hf_simo.utils.logging.progress_bar`: the one switch turns it off).

    Values at λ = 0 are those of θ_0 (evaluated once and shared by every primary task).
    """
    grid = check_lambda_grid(lambdas)
    if not isinstance(task_vectors, Mapping) or not task_vectors:
        raise ValueError("task_vectors is empty: pass at least one task -> task vector (θ_t − θ_0)")
    tasks = list(model.task_names if tasks is None else tasks)
    if isinstance(tasks, str) or not tasks:
        raise ValueError(f"tasks must be a non-empty list of task names, got {tasks!r}")
    unknown = [task for task in tasks if task not in model.task_names]
    if unknown:
        raise KeyError(f"task(s) {unknown} have no head in the model; it has tasks {model.task_names}")
    metric_names = {task: model.config.tasks[task]["metric"] for task in tasks}
    check_baselines(baselines, metric_names)

    params = dict(model.dinov2.named_parameters())
    base = check_encoder_state("base_state", base_state, params, complete=True)
    vectors = {
        str(primary): check_encoder_state(f"task_vectors[{primary!r}]", vector, params, complete=False)
        for primary, vector in task_vectors.items()
    }
    batches = reiterable_batches(batches)
    first = next(iter(batches), None)
    if first is None:
        raise ValueError("the evaluation data is empty (no batch)")
    check_batch(first, 0, tasks)

    original = {name: param.detach().clone() for name, param in params.items()}
    was_training = model.training
    device = next(iter(params.values())).device
    nonzero = [lam for lam in grid if lam != 0]
    bar = progress_bar(total=1 + len(vectors) * len(nonzero), desc="task-vector sweep")
    try:
        model.eval()
        base_dev = {name: tensor.to(device=device, dtype=torch.float32) for name, tensor in base.items()}
        set_encoder_weights(params, base_dev, None, 0.0)
        base_metrics = evaluate(model, batches, tasks)
        bar.update(1)
        results: dict[str, list[dict[str, dict[str, float]]]] = {}
        for primary, vector in vectors.items():
            vector_dev = {name: tensor.to(device=device, dtype=torch.float32) for name, tensor in vector.items()}
            points = []
            for lam in grid:
                if lam == 0:
                    points.append(copy.deepcopy(base_metrics))
                    continue
                bar.set_postfix_str(f"τ_{primary}, λ={lam:g}")
                set_encoder_weights(params, base_dev, vector_dev, lam)
                points.append(evaluate(model, batches, tasks))
                bar.update(1)
            results[primary] = points
            del vector_dev
    finally:
        bar.close()
        for name, param in params.items():
            param.copy_(original[name])
        model.train(was_training)

    return RelationshipResult(
        lambdas=grid,
        primary_tasks=list(vectors),
        tasks=tasks,
        metric_names=metric_names,
        baselines={task: float(baselines[task]) for task in tasks},
        base_metrics=base_metrics,
        metrics=results,
    )


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
    hub: HubOptions | None = None,
) -> RelationshipInputs:
    """Load θ_0 (with every checkpoint's head attached: a merge with α = 0), the task vectors τ_t = θ_t − θ_0 and
    each single-task model's value on `batches` (the normalization of the sweep). `hub`: how sources are read."""
    from ..merging import merge

    hub = hub or HubOptions()
    tasks = [f"{n}={s}" for n, s in sources.items()]
    model = merge(
        tasks,
        base,
        "task_arithmetic",
        alpha=0.0,
        max_relative_distance=max_relative_distance,
        hub=hub,
    )
    base_state = {k: v.detach().clone() for k, v in model.dinov2.state_dict().items()}
    task_vectors, baselines = {}, {}
    for name, source in sources.items():
        path, revision = split_revision(source)
        single = SimoModel.from_task_source(path, name, revision=revision, **hub.model_kwargs()).eval()
        own = single.task_names[0] if len(single.task_names) == 1 else name
        encoder = single.dinov2.state_dict()
        task_vectors[name] = {k: encoder[k] - base_state[k] for k in base_state if base_state[k].is_floating_point()}
        renamed = [{"pixel_values": b["pixel_values"], "labels": {own: b["labels"][name]}} for b in batches]
        baselines[name] = primary_values(single, evaluate(single, renamed, [own]))[own]
    return RelationshipInputs(model.eval(), base_state, task_vectors, baselines)


def run_relationships(
    relationships: RelationshipsArguments,
    sources: SourceArguments,
    data: DataArguments,
    hub: HubOptions | None = None,
) -> RelationshipResult:
    """The ``hf-simo relationships`` sweep on the first ``--validation_samples`` samples of a dataset's validation
    split (only that split of the embedded benchmark is built)."""
    from ..data import load_data
    from ..merging import parse_task_sources

    named = parse_task_sources(sources.task_checkpoints or [], hub=hub)
    loaded = load_data(data, train=False)
    batches = simo_batches(
        loaded["validation"], list(named), relationships.per_device_eval_batch_size, limit=data.validation_samples
    )
    inputs = relationship_inputs(
        named, batches, base=sources.base_model, max_relative_distance=sources.distance_limit, hub=hub
    )
    return sweep_task_vectors(
        inputs.model, inputs.base_state, inputs.task_vectors, relationships.lambdas, batches, inputs.baselines
    )


__all__ = ["RelationshipInputs", "relationship_inputs", "run_relationships", "sweep_task_vectors"]
