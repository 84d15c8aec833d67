"""The paper's aggregate scores and tables over per-task metric values (`hf_simo.metrics` computes those), and
each metric's direction and label.

Aggregates (paper appendix B):

- normalized performance, eq. (1): mean over tasks of (M_m / M_b) for higher-is-better metrics and (M_b / M_m)
  for lower-is-better ones;
- Δ_MTL, eq. (2): mean over tasks of (-1)^l_t (M_m - M_b) / M_b.

Reporting convention: the Δ column of the paper's tables is *normalized performance − 100%*, not eq. (2) (e.g. TA
in Table 1: 92.9%, 55.5%, 69.0% average to 72.5%, reported as Δ = −27.5%; eq. (2) gives −44.1%).
`render_table` prints that Δ column by default and eq. (2) as an extra column on request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


HIGHER_IS_BETTER: dict[str, bool] = {
    "miou": True,
    "pixel_accuracy": True,
    "abs_err": False,
    "rel_err": False,
    "ssi_abs_err": False,
    "ssi_rel_err": False,
    "mean_angle": False,
    "median_angle": False,
    "within_11.25": True,
    "within_22.5": True,
    "within_30": True,
}
METRIC_LABELS: dict[str, str] = {
    "miou": "mIoU",
    "pixel_accuracy": "pixel acc.",
    "abs_err": "aErr.",
    "rel_err": "rErr.",
    "ssi_abs_err": "SSI aErr.",
    "ssi_rel_err": "SSI rErr.",
    "mean_angle": "mDist.",
    "median_angle": "median dist.",
}
_PERCENT_METRICS = {"miou", "pixel_accuracy", "within_11.25", "within_22.5", "within_30"}


def _direction(metric_names: Mapping[str, str], task: str) -> bool:
    name = metric_names[task]
    if name not in HIGHER_IS_BETTER:
        raise KeyError(f"unknown metric {name!r} for task {task!r}; known: {sorted(HIGHER_IS_BETTER)}")
    return HIGHER_IS_BETTER[name]


def _common_tasks(values: Mapping[str, float], baselines: Mapping[str, float]) -> list[str]:
    missing = [t for t in values if t not in baselines]
    if missing:
        raise KeyError(f"no single-task baseline for task(s) {missing}")
    if not values:
        raise ValueError("no task values to aggregate")
    return list(values)


def task_normalized_performance(
    values: Mapping[str, float], baselines: Mapping[str, float], metric_names: Mapping[str, str]
) -> dict[str, float]:
    """Per task, (M_m / M_b)^((-1)^l_t): 1.0 means as good as the single-task model."""
    out = {}
    for task in _common_tasks(values, baselines):
        m, b = float(values[task]), float(baselines[task])
        ratio = m / b if _direction(metric_names, task) else b / m
        out[task] = ratio
    return out


def normalized_performance(
    values: Mapping[str, float], baselines: Mapping[str, float], metric_names: Mapping[str, str]
) -> float:
    """Eq. (1): the mean of the per-task normalized performances (1.0 = single-task level)."""
    per_task = task_normalized_performance(values, baselines, metric_names)
    return sum(per_task.values()) / len(per_task)


def delta_mtl(values: Mapping[str, float], baselines: Mapping[str, float], metric_names: Mapping[str, str]) -> float:
    """Eq. (2): mean relative change w.r.t. single-task models, signed so that higher is better."""
    total = 0.0
    tasks = _common_tasks(values, baselines)
    for task in tasks:
        m, b = float(values[task]), float(baselines[task])
        sign = 1.0 if _direction(metric_names, task) else -1.0
        total += sign * (m - b) / b
    return total / len(tasks)


def format_metric(name: str, value: float) -> str:
    """Values as the paper prints them: mIoU in percent, errors with 4 significant digits, angles in degrees."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if name in _PERCENT_METRICS:
        return f"{100 * value:.2f}"
    if name in ("mean_angle", "median_angle"):
        return f"{value:.2f}"
    return f"{value:.4g}" if abs(value) >= 1e-3 else f"{value:.3e}"


def render_table(
    rows: Mapping[str, Mapping[str, float]],
    baseline: str,
    metric_names: Mapping[str, str],
    *,
    task_labels: Mapping[str, str] | None = None,
    extra_columns: Mapping[str, Mapping[str, Any]] | None = None,
    show_delta_mtl: bool = False,
    title: str | None = None,
) -> str:
    """A paper-style Markdown table: absolute values with normalized performance in parentheses and a Δ column.

    Args:
        rows: method -> task -> primary metric value (see `MultiTaskMetrics.primary`).
        baseline: the row holding the single-task values (printed without percentages).
        metric_names: task -> its primary metric name (decides the direction and the formatting).
        task_labels: task -> column title (default: the task name).
        extra_columns: method -> column -> value, appended after Δ (e.g. Table 4's steps, parameters, samples).
        show_delta_mtl: also print eq. (2) as a column (the Δ column is normalized performance − 100%).
    """
    if baseline not in rows:
        raise KeyError(f"baseline row {baseline!r} not in rows {list(rows)}")
    tasks = list(rows[baseline])
    extra_names: list[str] = []
    for columns in (extra_columns or {}).values():
        extra_names += [c for c in columns if c not in extra_names]
    header = ["Method"]
    for task in tasks:
        metric = metric_names[task]
        arrow = "↑" if HIGHER_IS_BETTER[metric] else "↓"
        header.append(f"{(task_labels or {}).get(task, task)} [{METRIC_LABELS.get(metric, metric)} {arrow}]")
    header.append("Δ ↑")
    if show_delta_mtl:
        header.append("Δ_MTL eq.2 ↑")
    header += extra_names
    lines = []
    if title:
        lines += [f"**{title}**", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + [":-:"] * (len(header) - 1)) + "|"]
    base = rows[baseline]
    for method, values in rows.items():
        cells = [method]
        missing = [t for t in tasks if t not in values]
        if missing:
            raise KeyError(f"row {method!r} has no value for task(s) {missing}")
        if method == baseline:
            cells += [format_metric(metric_names[t], values[t]) for t in tasks]
            cells.append("-")
            if show_delta_mtl:
                cells.append("-")
        else:
            per_task = task_normalized_performance({t: values[t] for t in tasks}, base, metric_names)
            cells += [f"{format_metric(metric_names[t], values[t])} ({100 * per_task[t]:.1f}%)" for t in tasks]
            norm = sum(per_task.values()) / len(per_task)
            cells.append(f"{100 * (norm - 1):+.1f}%")
            if show_delta_mtl:
                cells.append(f"{100 * delta_mtl({t: values[t] for t in tasks}, base, metric_names):+.1f}%")
        extras = (extra_columns or {}).get(method, {})
        cells += [str(extras.get(name, "")) for name in extra_names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


__all__ = [
    "HIGHER_IS_BETTER",
    "METRIC_LABELS",
    "delta_mtl",
    "format_metric",
    "normalized_performance",
    "render_table",
    "task_normalized_performance",
]
