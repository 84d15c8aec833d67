"""Task Arithmetic on every k-task combination (the paper's Figure 1): for each non-empty subset S of the tasks,
θ_0 + α·Σ_{t∈S} τ_t with the heads of S, α chosen on the validation split (as `hf-simo merge` chooses it), the
normalized performance (eq. 1) of S's tasks measured on the test split. `CombinationResult.by_k` gives the points
of the figure (`hf_simo.analysis.plots.plot_combinations` draws it).

The merged encoder is written into one model's parameters per (S, α) instead of building 2^T − 1 models: the
same weights `merge` would produce (float32 θ_0 + α·Σ τ, Σ τ formed once per subset), and the model is restored
afterwards (also on error).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write_json
from ..evaluation import check_batch, evaluate
from ..metrics import normalized_performance
from ..utils.logging import progress_bar
from .sweep import check_baselines, check_encoder_state, reiterable_batches, set_encoder_weights


@dataclasses.dataclass
class CombinationResult:
    """Task Arithmetic on every task combination.

    Attributes:
        tasks: every task, in order.
        metric_names: task -> its primary metric.
        baselines: task -> single-task value on the reported split (the normalization).
        combinations: one entry per subset, by size then task order: ``{"tasks": [...], "alpha": α chosen on
            validation, "validation_normalized": eq. 1 on validation at α, "values": task -> primary metric on the
            reported split, "normalized": eq. 1 on the reported split}``.
    """

    tasks: list[str]
    metric_names: dict[str, str]
    baselines: dict[str, float]
    combinations: list[dict[str, Any]]

    def by_k(self) -> dict[int, list[float]]:
        """k -> the normalized performance of every k-task combination (the points of Figure 1)."""
        out: dict[int, list[float]] = {}
        for entry in self.combinations:
            out.setdefault(len(entry["tasks"]), []).append(float(entry["normalized"]))
        return dict(sorted(out.items()))

    def mean_by_k(self) -> dict[int, float]:
        return {k: statistics.fmean(values) for k, values in self.by_k().items()}

    def to_markdown(self) -> str:
        """One row per k: the number of combinations, mean, min and max normalized performance (%)."""
        lines = [
            "| k | combinations | mean normalized performance | min | max |",
            "|--:|--:|--:|--:|--:|",
        ]
        for k, values in self.by_k().items():
            lines.append(
                f"| {k} | {len(values)} | {100 * statistics.fmean(values):.1f}% | {100 * min(values):.1f}% | "
                f"{100 * max(values):.1f}% |"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CombinationResult:
        return cls(**{field.name: data[field.name] for field in dataclasses.fields(cls)})

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_json(Path(path), self.to_dict(), indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CombinationResult:
        import json

        return cls.from_dict(json.loads(Path(path).read_text()))


def task_subsets(tasks: Sequence[str], max_k: int | None = None) -> list[tuple[str, ...]]:
    """Every non-empty subset of `tasks` with at most `max_k` tasks, by size, then in the tasks' order."""
    top = len(tasks) if max_k is None else min(max_k, len(tasks))
    return [subset for k in range(1, top + 1) for subset in itertools.combinations(tasks, k)]


def _sum_vectors(vectors: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Σ_t τ_t tensor by tensor, summed in the order given (a tensor only some vectors have sums over those)."""
    total: dict[str, torch.Tensor] = {}
    for vector in vectors:
        for name, tensor in vector.items():
            total[name] = tensor.clone() if name not in total else total[name].add_(tensor)
    return total


@torch.no_grad()
def merge_combinations(
    model,
    base_state: Mapping[str, torch.Tensor],
    task_vectors: Mapping[str, Mapping[str, torch.Tensor]],
    alphas: Sequence[float],
    validation: Iterable[Mapping[str, Any]],
    validation_baselines: Mapping[str, float],
    test: Iterable[Mapping[str, Any]] | None = None,
    test_baselines: Mapping[str, float] | None = None,
    *,
    max_k: int | None = None,
) -> CombinationResult:
    """Task Arithmetic of every combination of the tasks of `task_vectors`, α chosen per combination on
    `validation` (the highest eq. 1; ties: the smaller α), reported on `test` (default: `validation`).

    Args:
        model: a `SimoModel` with every task's head (e.g. `relationship_inputs(...).model`); its encoder weights are
            overwritten and restored.
        base_state: θ_0 (the whole encoder state, as `sweep_task_vectors` takes it).
        task_vectors: task -> τ_t = θ_t − θ_0 (each task's name is its head's).
        alphas: the α grid (non-empty, finite, >= 0; 0 is θ_0 with the heads).
        validation, test: re-iterable batches `{"pixel_values", "labels": {task: tensor}}`.
        validation_baselines, test_baselines: task -> single-task primary metric on that split.
        max_k: largest combination size (default: all tasks).
    """
    grid = sorted({float(a) for a in alphas})
    if not grid or any(not math.isfinite(a) or a < 0 for a in grid):
        raise ValueError(f"alphas must be a non-empty list of finite numbers >= 0, got {list(alphas)}")
    if not isinstance(task_vectors, Mapping) or not task_vectors:
        raise ValueError("task_vectors is empty: pass task -> task vector (θ_t − θ_0)")
    tasks = [str(t) for t in task_vectors]
    unknown = [t for t in tasks if t not in model.task_names]
    if unknown:
        raise KeyError(f"task(s) {unknown} have no head in the model; it has tasks {model.task_names}")
    if max_k is not None and (isinstance(max_k, bool) or not isinstance(max_k, int) or max_k < 1):
        raise ValueError(f"max_k must be a positive integer or None, got {max_k!r}")
    metric_names = {t: model.config.tasks[t]["metric"] for t in tasks}
    val_base = check_baselines(validation_baselines, metric_names, "validation_baselines")
    validation = reiterable_batches(validation)
    if test is None:
        test, test_base = validation, val_base
    else:
        test = reiterable_batches(test)
        test_base = check_baselines(test_baselines or {}, metric_names, "test_baselines")
    for name, batches in (("validation", validation), ("test", test)):
        first = next(iter(batches), None)
        if first is None:
            raise ValueError(f"the {name} data is empty (no batch)")
        check_batch(first, 0, tasks)

    params = dict(model.dinov2.named_parameters())
    base = check_encoder_state("base_state", base_state, params, complete=True)
    vectors = {
        t: check_encoder_state(f"task_vectors[{t!r}]", v, params, complete=False) for t, v in task_vectors.items()
    }
    device = next(iter(params.values())).device
    base = {k: v.to(device=device, dtype=torch.float32) for k, v in base.items()}
    vectors = {t: {k: v.to(device=device, dtype=torch.float32) for k, v in vec.items()} for t, vec in vectors.items()}

    subsets = task_subsets(tasks, max_k)
    original = {name: param.detach().clone() for name, param in params.items()}
    was_training = model.training
    bar = progress_bar(total=len(subsets) * (len(grid) + 1), desc="task combinations")
    entries = []
    try:
        model.eval()
        for subset in subsets:
            bar.set_postfix_str("+".join(subset))
            summed = _sum_vectors([vectors[task] for task in subset])  # once per subset, scaled per α
            best_alpha, best_score = None, -math.inf
            for alpha in grid:
                set_encoder_weights(params, base, summed, alpha)
                values = evaluate(model, validation, list(subset))
                primary = {t: values[t][metric_names[t]] for t in subset}
                score = normalized_performance(primary, val_base, metric_names)
                if math.isfinite(score) and score > best_score:
                    best_alpha, best_score = alpha, score
                bar.update(1)
            best_alpha = grid[0] if best_alpha is None else best_alpha
            set_encoder_weights(params, base, summed, best_alpha)
            values = evaluate(model, test, list(subset))
            primary = {t: float(values[t][metric_names[t]]) for t in subset}
            entries.append(
                {
                    "tasks": list(subset),
                    "alpha": best_alpha,
                    "validation_normalized": best_score,
                    "values": primary,
                    "normalized": normalized_performance(primary, test_base, metric_names),
                }
            )
            bar.update(1)
    finally:
        bar.close()
        for name, param in params.items():
            param.copy_(original[name])
        model.train(was_training)
    return CombinationResult(tasks, metric_names, {t: test_base[t] for t in tasks}, entries)


__all__ = ["CombinationResult", "merge_combinations", "task_subsets"]
