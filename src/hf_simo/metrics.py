"""Dense-prediction metrics that stream over batches and reduce exactly across processes, plus the paper's
aggregate scores and tables.

Each task metric keeps additive states (a confusion matrix, sums, counts), so the dataset-level value is exact
however the data is batched or split over processes: every process updates with its own disjoint shard, then
`compute(accelerator)` sums the states with `accelerator.reduce` before computing. The one statistic no fixed-size
additive state gives exactly, the median angular error, keeps its per-pixel values instead (`TaskMetric.samples`,
on the CPU, concatenated across processes with `accelerator.gather`).

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
from pathlib import Path
from typing import Any

import torch

from .configuration_simo import TaskSpec
from .losses import unit_vectors, valid_mask


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
EVALUATE_MODULE_PATH = str(Path(__file__).parent / "evaluate_metrics" / "dense_prediction")
"""Folder of the `evaluate` module: `evaluate.load(EVALUATE_MODULE_PATH, "depth")` works offline."""
_PERCENT_METRICS = {"miou", "pixel_accuracy", "within_11.25", "within_22.5", "within_30"}


class TaskMetric:
    """Metric states for one task: additive `states` (on `device`, summed across processes) and `samples`, named
    lists of per-pixel value tensors (on the CPU, concatenated across processes) for the subclasses that need them.
    Subclasses define `_init_states`, `update` and `_compute` (and `SAMPLES`, the names of their samples)."""

    SAMPLES: tuple[str, ...] = ()

    def __init__(self, spec: TaskSpec, device: torch.device | str | None = None):
        self.spec = spec
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.states: dict[str, torch.Tensor] = {}
        self.samples: dict[str, list[torch.Tensor]] = {}
        self.reset()

    def reset(self) -> None:
        self.states = {k: v.to(self.device) for k, v in self._init_states().items()}
        self.samples = {name: [] for name in self.SAMPLES}

    def merge(self, other: TaskMetric) -> None:
        """Add another shard's states and samples to these: what `compute(accelerator)` does across processes."""
        for key, value in other.states.items():
            self.states[key] += value.to(self.device)
        for name, values in other.samples.items():
            self.samples[name].extend(values)

    def _init_states(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def update(self, prediction: torch.Tensor, labels: torch.Tensor) -> None:
        raise NotImplementedError

    def _compute(self, states: dict[str, torch.Tensor], samples: dict[str, torch.Tensor]) -> dict[str, float]:
        raise NotImplementedError

    def compute(self, accelerator=None) -> dict[str, float]:
        """Metric values over everything seen, over all processes when `accelerator` is given (states summed,
        samples gathered: every process gets the same values)."""
        states = self.states
        samples = {name: _concatenate(values) for name, values in self.samples.items()}
        if accelerator is not None and getattr(accelerator, "num_processes", 1) > 1:
            states = {k: accelerator.reduce(v.clone(), reduction="sum") for k, v in states.items()}
            samples = {name: gather_values(accelerator, values) for name, values in samples.items()}
        return self._compute(states, samples)


def _concatenate(values: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(values) if values else torch.zeros(0, dtype=torch.float64)


def gather_values(accelerator, values: torch.Tensor) -> torch.Tensor:
    """The 1-D `values` of every process, concatenated in process order (each process may hold a different number:
    `accelerator.gather` needs equal shapes, so each pads to the longest and the padding is cut off)."""
    lengths = accelerator.gather(torch.tensor([values.numel()], device=accelerator.device)).tolist()
    padded = torch.zeros(max(lengths), dtype=values.dtype, device=accelerator.device)
    padded[: values.numel()] = values.to(accelerator.device)
    gathered = accelerator.gather(padded).cpu()
    longest = max(lengths)
    return torch.cat([gathered[i * longest : i * longest + n] for i, n in enumerate(lengths)])


class SegmentationMetric(TaskMetric):
    """mIoU and pixel accuracy from a confusion matrix; classes absent from both prediction and labels are
    excluded from the mean (the usual convention, as in mmseg)."""

    def _init_states(self):
        k = self.spec.num_outputs
        return {"confusion": torch.zeros(k, k, dtype=torch.int64)}

    @torch.no_grad()
    def update(self, prediction: torch.Tensor, labels: torch.Tensor) -> None:
        """`prediction`: (B, K, H, W) logits or (B, H, W) class ids; `labels`: (B, H, W) class ids."""
        k = self.spec.num_outputs
        pred = prediction.argmax(dim=1) if prediction.ndim == 4 else prediction
        labels = labels[:, 0] if labels.ndim == 4 else labels
        mask = labels != self.spec.ignore_index
        target, pred = labels[mask].long(), pred[mask].long()
        if target.numel() and (target.min() < 0 or target.max() >= k):
            raise ValueError(f"labels for task contain class ids outside [0, {k}) that are not the ignore index")
        counts = torch.bincount(target * k + pred, minlength=k * k).reshape(k, k)
        self.states["confusion"] += counts.to(self.device)

    def _compute(self, states, samples):
        confusion = states["confusion"].double()
        tp = confusion.diag()
        union = confusion.sum(0) + confusion.sum(1) - tp
        present = union > 0
        total = confusion.sum()
        miou = (tp[present] / union[present]).mean().item() if present.any() else float("nan")
        accuracy = (tp.sum() / total).item() if total > 0 else float("nan")
        return {"miou": miou, "pixel_accuracy": accuracy}


class RegressionMetric(TaskMetric):
    """Mean absolute error and mean relative error (|p − y| / |y|, where y ≠ 0) over valid pixels and channels."""

    def _init_states(self):
        return {
            "abs_sum": torch.zeros((), dtype=torch.float64),
            "count": torch.zeros((), dtype=torch.int64),
            "rel_sum": torch.zeros((), dtype=torch.float64),
            "rel_count": torch.zeros((), dtype=torch.int64),
        }

    @torch.no_grad()
    def update(self, prediction: torch.Tensor, labels: torch.Tensor) -> None:
        labels = labels.unsqueeze(1) if labels.ndim == 3 else labels
        mask = valid_mask(self.spec, labels).unsqueeze(1).expand_as(labels)
        pred, target = prediction.double()[mask], labels.double()[mask]
        err = (pred - target).abs()
        nonzero = target != 0
        self.states["abs_sum"] += err.sum().to(self.device)
        self.states["count"] += torch.tensor(err.numel(), device=self.device)
        self.states["rel_sum"] += (err[nonzero] / target[nonzero].abs()).sum().to(self.device)
        self.states["rel_count"] += nonzero.sum().to(self.device)

    def _compute(self, states, samples):
        count, rel_count = states["count"].item(), states["rel_count"].item()
        return {
            "abs_err": states["abs_sum"].item() / count if count else float("nan"),
            "rel_err": states["rel_sum"].item() / rel_count if rel_count else float("nan"),
        }


class ScaleShiftInvariantMetric(RegressionMetric):
    """The disparity metrics: absolute and relative error after aligning each image's prediction to its labels by
    least squares (MiDaS / Depth Anything's evaluation of affine-invariant inverse depth), plus the raw ones.

    Per image, over its valid pixels, the scale s and shift t minimising Σ(s·p + t − y)² (closed form, float64);
    `ssi_abs_err` is the mean |s·p + t − y| and `ssi_rel_err` (AbsRel) the mean |s·p + t − y| / |y| (where y ≠ 0)
    over every valid pixel of the data set, as `abs_err` / `rel_err` (the unaligned errors, also reported: what
    disparity checkpoints written before this metric name as their primary one). An image whose prediction is
    constant over its valid pixels gets s = 0, t = mean(y) (every least-squares solution predicts that); an image
    with no valid pixel adds nothing. The alignment is per image, so the states are sums and stream exactly.
    """

    def _init_states(self):
        states = super()._init_states()
        states.update({f"ssi_{key}": torch.zeros_like(value) for key, value in states.items()})
        return states

    @torch.no_grad()
    def update(self, prediction: torch.Tensor, labels: torch.Tensor) -> None:
        super().update(prediction, labels)
        labels = labels.unsqueeze(1) if labels.ndim == 3 else labels
        valid = valid_mask(self.spec, labels)
        aligned = align_scale_and_shift(prediction, labels, valid)
        mask = valid.unsqueeze(1).expand_as(labels)
        target = labels.double()[mask]
        err = (aligned[mask] - target).abs()
        nonzero = target != 0
        self.states["ssi_abs_sum"] += err.sum().to(self.device)
        self.states["ssi_count"] += torch.tensor(err.numel(), device=self.device)
        self.states["ssi_rel_sum"] += (err[nonzero] / target[nonzero].abs()).sum().to(self.device)
        self.states["ssi_rel_count"] += nonzero.sum().to(self.device)

    def _compute(self, states, samples):
        count, rel_count = states["ssi_count"].item(), states["ssi_rel_count"].item()
        return {
            "ssi_abs_err": states["ssi_abs_sum"].item() / count if count else float("nan"),
            "ssi_rel_err": states["ssi_rel_sum"].item() / rel_count if rel_count else float("nan"),
            **super()._compute(states, samples),
        }


def align_scale_and_shift(prediction: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`prediction` (B, 1, H, W) mapped to s·p + t per image, (s, t) the least-squares fit to `labels` over `mask`
    (B, H, W), in float64 (centred sums: no cancellation for large disparities)."""
    pred, target = prediction.double(), labels.double()
    weight = mask.unsqueeze(1).to(pred.dtype)
    count = weight.sum(dim=(1, 2, 3), keepdim=True)
    total = count.clamp(min=1)
    pred_mean = (pred * weight).sum(dim=(1, 2, 3), keepdim=True) / total
    target_mean = (target * weight).sum(dim=(1, 2, 3), keepdim=True) / total
    centred = (pred - pred_mean) * weight
    variance = (centred * centred).sum(dim=(1, 2, 3), keepdim=True)
    covariance = (centred * (target - target_mean)).sum(dim=(1, 2, 3), keepdim=True)
    scale = torch.where(variance > 0, covariance / variance.clamp(min=torch.finfo(pred.dtype).tiny), 0.0)
    return scale * (pred - pred_mean) + target_mean


class NormalsMetric(TaskMetric):
    """Angular error in degrees (mean, median, % within 11.25°/22.5°/30°) and absolute error, over valid pixels.

    The median is exactly `np.median`'s over the valid pixels (for an even count, the mean of the two middle
    angles). No fixed-size state that streams and adds across processes gives an exact median (a histogram gives it
    to within a bin, and narrowing to the bin exactly needs a second pass over the data, i.e. a second forward pass
    of the model), so every valid pixel's angle is kept, in float64 on the CPU: 8 bytes per valid pixel (4096-pixel
    images: 32 KB each; 654 NYUv2 test images at 480×640: 1.6 GB), gathered onto every process by `compute`.
    """

    SAMPLES = ("angles",)

    def _init_states(self):
        return {
            "angle_sum": torch.zeros((), dtype=torch.float64),
            "count": torch.zeros((), dtype=torch.int64),
            "within": torch.zeros(3, dtype=torch.int64),
            "abs_sum": torch.zeros((), dtype=torch.float64),
        }

    @torch.no_grad()
    def update(self, prediction: torch.Tensor, labels: torch.Tensor) -> None:
        mask = valid_mask(self.spec, labels)
        pred = unit_vectors(prediction.double())
        target = labels.double()
        cosine = (pred * unit_vectors(target)).sum(dim=1).clamp(-1.0, 1.0)[mask]
        angles = torch.rad2deg(torch.acos(cosine))
        self.samples["angles"].append(angles.cpu())
        self.states["angle_sum"] += angles.sum().to(self.device)
        self.states["count"] += torch.tensor(angles.numel(), device=self.device)
        thresholds = torch.tensor([11.25, 22.5, 30.0], dtype=angles.dtype, device=angles.device)
        self.states["within"] += (angles[:, None] < thresholds).sum(dim=0).to(self.device)
        abs_err = (pred - target).abs().sum(dim=1)[mask]
        self.states["abs_sum"] += abs_err.sum().to(self.device)

    def _compute(self, states, samples):
        count = states["count"].item()
        if not count:
            nan = float("nan")
            return dict.fromkeys(
                ["mean_angle", "median_angle", "within_11.25", "within_22.5", "within_30", "abs_err"], nan
            )
        angles = samples["angles"]
        # the two middle values (the same one for an odd count; `kthvalue` ranks are 1-based), averaged as np.median
        lower, upper = (angles.kthvalue(rank).values.item() for rank in ((count + 1) // 2, count // 2 + 1))
        within = (states["within"].double() / count).tolist()
        return {
            "mean_angle": states["angle_sum"].item() / count,
            "median_angle": (lower + upper) / 2,
            "within_11.25": within[0],
            "within_22.5": within[1],
            "within_30": within[2],
            "abs_err": states["abs_sum"].item() / (count * 3),
        }


def metric_for(spec: TaskSpec, device: torch.device | str | None = None) -> TaskMetric:
    if spec.kind == "semantic_segmentation":
        return SegmentationMetric(spec, device)
    if spec.kind == "surface_normals":
        return NormalsMetric(spec, device)
    if spec.kind == "disparity":
        return ScaleShiftInvariantMetric(spec, device)
    return RegressionMetric(spec, device)


class MultiTaskMetrics:
    """One streaming metric per task; `compute` returns task -> {metric name -> value}.

    ```python
    metrics = MultiTaskMetrics(model.config.task_specs)
    for batch in loader:  # each process: its own shard of the evaluation set
        metrics.update(model(batch["pixel_values"]).predictions, batch["labels"])
    results = metrics.compute(accelerator)  # exact over all processes
    ```
    """

    def __init__(self, task_specs: Mapping[str, TaskSpec], device: torch.device | str | None = None):
        self.task_specs = dict(task_specs)
        self.metrics = {name: metric_for(spec, device) for name, spec in self.task_specs.items()}

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()

    def merge(self, other: MultiTaskMetrics) -> None:
        """Add another shard's metrics to these, task by task (see `TaskMetric.merge`)."""
        for name, metric in other.metrics.items():
            self.metrics[name].merge(metric)

    def update(self, predictions: Mapping[str, torch.Tensor], labels: Mapping[str, torch.Tensor]) -> None:
        for name, target in labels.items():
            if name not in self.metrics:
                raise KeyError(f"labels for unknown task {name!r}; metrics track {list(self.metrics)}")
            if name not in predictions:
                raise KeyError(f"no prediction for task {name!r}; predictions have {list(predictions)}")
            self.metrics[name].update(predictions[name].detach(), target)

    def compute(self, accelerator=None) -> dict[str, dict[str, float]]:
        return {name: metric.compute(accelerator) for name, metric in self.metrics.items()}

    def primary(self, results: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        """Each task's primary metric (its spec's `metric`), the value normalized performance uses."""
        return {name: results[name][self.task_specs[name].metric] for name in self.task_specs if name in results}


# ---------------------------------------------------------------------------------------------- aggregates


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
    "EVALUATE_MODULE_PATH",
    "HIGHER_IS_BETTER",
    "MultiTaskMetrics",
    "NormalsMetric",
    "RegressionMetric",
    "ScaleShiftInvariantMetric",
    "SegmentationMetric",
    "TaskMetric",
    "align_scale_and_shift",
    "delta_mtl",
    "format_metric",
    "gather_values",
    "metric_for",
    "normalized_performance",
    "render_table",
    "task_normalized_performance",
]
