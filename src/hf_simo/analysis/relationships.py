"""Task relationships from task vectors (paper section 6.4, appendix E): the sweep's results, the T×T matrix, the
classification and the report (pure, apart from `RelationshipResult.save`/`load`); the sweep itself is
`hf_simo.analysis.sweep.sweep_task_vectors`.

For each primary task t, the shared encoder is set to θ_0 + λ·τ_t for λ on a grid (default 0, 0.1, ..., 1.5) while
*every* task's fine-tuned head stays attached, and every task is evaluated. How a secondary task s moves as τ_t is
added tells whether t helps s (beneficial), hurts it (conflicting), or leaves it alone; how far λ must go before t
itself recovers its single-task performance tells how sensitive t's representation is.

One `SimoModel` is reused for the whole sweep: encoder parameters are overwritten in place (`copy_` under
`torch.no_grad`), so no checkpoint is reloaded between grid points, and the model's own encoder weights are put back
at the end, also when the sweep fails.

Normalized performance follows the paper's eq. (1) per task: M_m / M_b for higher-is-better metrics, M_b / M_m for
lower-is-better ones, against the single-task baselines you pass (1.0 = single-task level).

The T×T matrix (`relationship_matrix`) compares the model θ_0 + λ·τ_t with the model θ_0 (same heads), per evaluated
task s, at one λ of the grid:

- ``mode="difference"`` (default): NP_s(θ_0 + λτ_t) − NP_s(θ_0), in units of the single-task performance
  (0.05 = five percentage points of the single-task model's metric);
- ``mode="ratio"``: NP_s(θ_0 + λτ_t) / NP_s(θ_0), i.e. s's metric relative to the θ_0 model (baselines cancel out;
  > 1 means adding τ_t helps s).

`summarize_relationships` / `describe_relationships` classify pairs and tasks with the documented thresholds:

- a pair t → s (s ≠ t) is *beneficial* when the difference is ≥ `threshold` (default 0.02, two points), *conflicting*
  when it is ≤ −`threshold`, neutral otherwise;
- a task is *sensitive* when, with its own task vector, it first reaches `recovery_level` (default 95%) of its
  single-task performance only at λ ≥ `sensitive_lambda` (default 0.75), or never on the grid ("requires λ ≈ 1 to
  recover", as disparity in Figure 3), or when another task's vector costs it at least `sensitive_drop` (default
  0.10, ten points) at the chosen λ (as the Taskonomy tasks in Figure 6).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..metrics import HIGHER_IS_BETTER


DEFAULT_LAMBDAS: tuple[float, ...] = tuple(round(0.1 * i, 10) for i in range(16))
"""0, 0.1, ..., 1.5: the grid of the paper's Figures 3, 5 and 6."""

BENEFICIAL_THRESHOLD = 0.02
"""Minimum change in normalized performance (vs θ_0) for a pair to count as beneficial or conflicting."""
RECOVERY_LEVEL = 0.95
"""Fraction of the single-task performance a task must reach with its own task vector to count as recovered."""
SENSITIVE_LAMBDA = 0.75
"""A task that needs λ at least this large to recover is sensitive."""
SENSITIVE_DROP = 0.10
"""A task losing at least this much normalized performance to another task's vector is sensitive."""

_LAMBDA_TOLERANCE = 1e-9


# ---------------------------------------------------------------------------------------------- results


def normalized_value(value: float, baseline: float, metric: str) -> float:
    """Eq. (1) for one task, without dividing by zero: a zero error gives +inf, a NaN metric gives NaN."""
    if metric not in HIGHER_IS_BETTER:
        raise KeyError(f"unknown metric {metric!r}; known: {sorted(HIGHER_IS_BETTER)}")
    value, baseline = float(value), float(baseline)
    if math.isnan(value):
        return math.nan
    if HIGHER_IS_BETTER[metric]:
        return value / baseline
    return baseline / value if value > 0 else math.inf


@dataclasses.dataclass
class RelationshipResult:
    """Everything a sweep measured; normalized curves are derived on demand from raw metrics and baselines.

    Attributes:
        lambdas: the λ grid, ascending.
        primary_tasks: tasks whose vector τ_t was swept, in order.
        tasks: tasks evaluated at every grid point (every head of the model unless restricted).
        metric_names: task -> its primary metric (the one normalized performance uses).
        baselines: task -> single-task value of that metric.
        base_metrics: task -> {metric: value} of the θ_0 encoder with the same heads.
        metrics: primary task -> one entry per λ: task -> {metric: value}.
    """

    lambdas: list[float]
    primary_tasks: list[str]
    tasks: list[str]
    metric_names: dict[str, str]
    baselines: dict[str, float]
    base_metrics: dict[str, dict[str, float]]
    metrics: dict[str, list[dict[str, dict[str, float]]]]

    def values(self, primary: str) -> dict[str, list[float]]:
        """Task -> its primary metric at each λ, with τ_`primary` added."""
        self._check_primary(primary)
        return {task: [point[task][self.metric_names[task]] for point in self.metrics[primary]] for task in self.tasks}

    def normalized(self, primary: str) -> dict[str, list[float]]:
        """Task -> its normalized performance (1.0 = single-task level) at each λ, with τ_`primary` added."""
        return {
            task: [normalized_value(v, self.baselines[task], self.metric_names[task]) for v in values]
            for task, values in self.values(primary).items()
        }

    @property
    def base_values(self) -> dict[str, float]:
        """Task -> primary metric of the θ_0 model (every head attached)."""
        return {task: self.base_metrics[task][self.metric_names[task]] for task in self.tasks}

    @property
    def base_normalized(self) -> dict[str, float]:
        """Task -> normalized performance of the θ_0 model."""
        return {
            task: normalized_value(value, self.baselines[task], self.metric_names[task])
            for task, value in self.base_values.items()
        }

    def lambda_index(self, lam: float) -> int:
        """Index of `lam` in the grid; an error lists the grid when it is not on it."""
        index = lambda_grid_index(lam, self.lambdas)
        if index is None:
            raise ValueError(f"λ = {lam} is not on the sweep's grid {self.lambdas}")
        return index

    def default_lambda(self) -> float:
        """λ = 1 (the fine-tuned encoder) when on the grid, else the largest λ swept."""
        try:
            return self.lambdas[self.lambda_index(1.0)]
        except ValueError:
            return max(self.lambdas)

    def _check_primary(self, primary: str) -> None:
        if primary not in self.metrics:
            raise KeyError(f"no sweep for task vector {primary!r}; swept: {self.primary_tasks}")

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RelationshipResult:
        known = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(known - set(data))
        if missing:
            raise ValueError(f"not a RelationshipResult: missing field(s) {missing}")
        return cls(**{k: copy.deepcopy(data[k]) for k in known})

    def save(self, path: str | os.PathLike) -> Path:
        """Write the result as JSON, atomically (NaN/inf are written as JSON's NaN/Infinity)."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> RelationshipResult:
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclasses.dataclass
class RelationshipMatrix:
    """Effect of adding τ_t (rows) on task s (columns) at one λ; see the module docstring for the two modes."""

    primary_tasks: list[str]
    tasks: list[str]
    lam: float
    mode: str
    values: list[list[float]]

    def __getitem__(self, pair: tuple[str, str]) -> float:
        primary, task = pair
        return self.values[self.primary_tasks.index(primary)][self.tasks.index(task)]

    def to_markdown(self) -> str:
        """The matrix as a Markdown table (differences in points, ratios as percentages)."""
        header = f"| τ added \\ task (λ = {self.lam:g}) | " + " | ".join(self.tasks) + " |"
        lines = [header, "|---|" + "|".join(":-:" for _ in self.tasks) + "|"]
        for primary, row in zip(self.primary_tasks, self.values):
            lines.append(f"| τ_{primary} | " + " | ".join(_format_effect(v, self.mode) for v in row) + " |")
        return "\n".join(lines) + "\n"


def _format_effect(value: float, mode: str) -> str:
    if math.isnan(value):
        return "n/a"
    if mode == "difference":
        return f"{round(100 * value, 1) + 0.0:+.1f}"
    return f"{100 * value:.1f}%"


# ---------------------------------------------------------------------------------------------- the sweep


def lambda_grid_index(lam: float, grid: Sequence[float]) -> int | None:
    """Index of `lam` in `grid` (up to float rounding), None when it is not on it."""
    for index, value in enumerate(grid):
        if abs(value - float(lam)) <= _LAMBDA_TOLERANCE:
            return index
    return None


def check_lambda_grid(lambdas: Sequence[float] | None) -> list[float]:
    """The sorted λ grid of a sweep (None: `DEFAULT_LAMBDAS`); an empty, non-finite or duplicated grid is an error,
    raised before any sweep runs."""
    if lambdas is None:
        return list(DEFAULT_LAMBDAS)
    try:
        values = [float(v) for v in lambdas]
    except (TypeError, ValueError) as err:
        raise TypeError(f"lambdas must be a sequence of numbers, got {lambdas!r}") from err
    if not values:
        raise ValueError("the λ grid is empty: pass at least one coefficient, e.g. DEFAULT_LAMBDAS (0, 0.1, ..., 1.5)")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ValueError(f"the λ grid must hold finite numbers, got {bad}")
    values = sorted(values)
    duplicates = sorted({a for a, b in zip(values, values[1:]) if abs(a - b) <= _LAMBDA_TOLERANCE})
    if duplicates:
        raise ValueError(f"the λ grid has duplicate value(s) {duplicates}")
    return values


# ---------------------------------------------------------------------------------------------- matrix and report


def relationship_matrix(
    result: RelationshipResult, lam: float | None = None, *, mode: str = "difference"
) -> RelationshipMatrix:
    """Rows: task vector τ_t added; columns: evaluated task s; entries compare θ_0 + λτ_t with θ_0 (see module doc).

    `lam` must be on the sweep's grid (default: 1.0 if swept, else the largest λ).
    """
    if mode not in ("difference", "ratio"):
        raise ValueError(f"mode must be 'difference' or 'ratio', got {mode!r}")
    lam = result.default_lambda() if lam is None else float(lam)
    index = result.lambda_index(lam)
    base = result.base_normalized
    rows = []
    for primary in result.primary_tasks:
        curves = result.normalized(primary)
        row = []
        for task in result.tasks:
            value, reference = curves[task][index], base[task]
            if mode == "difference":
                row.append(value - reference)
            else:
                row.append(value / reference if reference not in (0.0, math.inf) else math.nan)
        rows.append(row)
    return RelationshipMatrix(
        primary_tasks=list(result.primary_tasks), tasks=list(result.tasks), lam=lam, mode=mode, values=rows
    )


@dataclasses.dataclass
class RelationshipSummary:
    """Classified pairs and tasks (thresholds in the module docstring).

    beneficial / conflicting: (primary t, task s, NP_s(θ_0 + λτ_t) − NP_s(θ_0)), strongest first.
    recovery_lambda: task -> the first λ at which its own vector brings it to `recovery_level` (None: never).
    worst_drop: task -> (other primary, largest loss of normalized performance to another task's vector).
    sensitive: task -> the reasons it is flagged.
    """

    lam: float
    threshold: float
    beneficial: list[tuple[str, str, float]]
    conflicting: list[tuple[str, str, float]]
    neutral: list[tuple[str, str, float]]
    recovery_lambda: dict[str, float | None]
    worst_drop: dict[str, tuple[str, float]]
    sensitive: dict[str, list[str]]


def summarize_relationships(
    result: RelationshipResult,
    lam: float | None = None,
    *,
    threshold: float = BENEFICIAL_THRESHOLD,
    recovery_level: float = RECOVERY_LEVEL,
    sensitive_lambda: float = SENSITIVE_LAMBDA,
    sensitive_drop: float = SENSITIVE_DROP,
) -> RelationshipSummary:
    """Beneficial and conflicting pairs at `lam`, and sensitive tasks, as data (see `describe_relationships`)."""
    if threshold < 0 or sensitive_drop < 0:
        raise ValueError("threshold and sensitive_drop must be >= 0")
    matrix = relationship_matrix(result, lam, mode="difference")
    beneficial, conflicting, neutral = [], [], []
    for primary in matrix.primary_tasks:
        for task in matrix.tasks:
            if task == primary:
                continue
            delta = matrix[primary, task]
            if math.isnan(delta):
                continue
            if delta >= threshold:
                beneficial.append((primary, task, delta))
            elif delta <= -threshold:
                conflicting.append((primary, task, delta))
            else:
                neutral.append((primary, task, delta))
    beneficial.sort(key=lambda item: -item[2])
    conflicting.sort(key=lambda item: item[2])

    recovery: dict[str, float | None] = {}
    sensitive: dict[str, list[str]] = {}
    for task in result.tasks:
        if task not in result.metrics:
            continue
        curve = result.normalized(task)[task]
        reached = [lam_ for lam_, value in zip(result.lambdas, curve) if value >= recovery_level]
        recovery[task] = reached[0] if reached else None
        if recovery[task] is None:
            best = max((v for v in curve if not math.isnan(v)), default=math.nan)
            sensitive.setdefault(task, []).append(
                f"never reaches {100 * recovery_level:.0f}% of its single-task performance with its own task vector "
                f"on λ ∈ [{min(result.lambdas):g}, {max(result.lambdas):g}] (best {100 * best:.1f}%)"
            )
        elif recovery[task] >= sensitive_lambda:
            sensitive.setdefault(task, []).append(
                f"needs λ ≥ {recovery[task]:g} of its own task vector to reach {100 * recovery_level:.0f}% of its "
                "single-task performance"
            )
    worst: dict[str, tuple[str, float]] = {}
    for task in matrix.tasks:
        drops = [(p, matrix[p, task]) for p in matrix.primary_tasks if p != task and not math.isnan(matrix[p, task])]
        if drops:
            primary, delta = min(drops, key=lambda item: item[1])
            worst[task] = (primary, delta)
            if delta <= -sensitive_drop:
                sensitive.setdefault(task, []).append(
                    f"loses {100 * -delta:.1f} points when τ_{primary} is added (λ = {matrix.lam:g})"
                )
    return RelationshipSummary(
        lam=matrix.lam,
        threshold=threshold,
        beneficial=beneficial,
        conflicting=conflicting,
        neutral=neutral,
        recovery_lambda=recovery,
        worst_drop=worst,
        sensitive=sensitive,
    )


def describe_relationships(result: RelationshipResult, lam: float | None = None, **thresholds: float) -> str:
    """A short text report: beneficial and conflicting pairs at `lam`, and sensitive tasks (thresholds in kwargs)."""
    summary = summarize_relationships(result, lam, **thresholds)
    base = result.base_normalized
    points = 100 * summary.threshold
    lines = [
        f"Task relationships at λ = {summary.lam:g}: change in normalized performance of task s when τ_t is added "
        f"to θ_0 (all heads attached), in points of the single-task performance; |change| ≥ {points:.1f} counts.",
        "",
        "Beneficial (τ_t helps s):",
    ]

    def pair_line(primary: str, task: str, delta: float) -> str:
        before = base[task]
        return (
            f"  - {primary} → {task}: {100 * delta:+.1f} points ({100 * before:.1f}% → {100 * (before + delta):.1f}%)"
        )

    lines += [pair_line(*item) for item in summary.beneficial] or ["  - none"]
    lines += ["", "Conflicting (τ_t hurts s):"]
    lines += [pair_line(*item) for item in summary.conflicting] or ["  - none"]
    lines += ["", f"Neutral: {len(summary.neutral)} pair(s) within ±{points:.1f} points."]
    lines += ["", "Sensitive tasks:"]
    if summary.sensitive:
        for task, reasons in summary.sensitive.items():
            lines.append(f"  - {task}: " + "; ".join(reasons))
    else:
        lines.append("  - none")
    if summary.recovery_lambda:
        recovered = ", ".join(
            f"{task} {'never' if lam_ is None else f'λ = {lam_:g}'}" for task, lam_ in summary.recovery_lambda.items()
        )
        lines += ["", f"First λ reaching {100 * thresholds.get('recovery_level', RECOVERY_LEVEL):.0f}%: {recovered}."]
    return "\n".join(lines) + "\n"


__all__ = [
    "BENEFICIAL_THRESHOLD",
    "DEFAULT_LAMBDAS",
    "RECOVERY_LEVEL",
    "SENSITIVE_DROP",
    "SENSITIVE_LAMBDA",
    "check_lambda_grid",
    "lambda_grid_index",
    "RelationshipMatrix",
    "RelationshipResult",
    "RelationshipSummary",
    "describe_relationships",
    "normalized_value",
    "relationship_matrix",
    "summarize_relationships",
]
