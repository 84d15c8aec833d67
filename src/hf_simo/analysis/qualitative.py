"""Qualitative grids (paper appendix D, Figure 4): rows = samples; columns = the input, then per task the ground
truth and each model's prediction.

Colour conventions, the same for ground truth and predictions so cells compare at a glance:

- semantic segmentation: one palette colour per class (tab20 up to 20 classes, then well-spread hues; never black);
  the ignore index (and any id outside the classes) is black;
- depth / disparity: a colormap (viridis, whose darkest colour is not black) with one range per row and task, taken
  from the valid ground-truth pixels (1st-99th percentile; predictions when the ground truth has none), so the
  ground truth and every model of a row share it; invalid pixels are black;
- surface normals: RGB = (n + 1) / 2; invalid pixels black;
- generic regression: grey levels of the channel mean, one range per row and task as for depth; invalid black.

`build_qualitative_grid` returns the RGB cells (testable without drawing); `plot_qualitative` draws and saves them.
"""

from __future__ import annotations

import colorsys
import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ..configuration_simo import TaskSpec
from .plots import FigureOptions, new_figure, save_figure


MISSING_CELL = 0.92
"""Grey level of a cell whose model has no head for the task."""


# ---------------------------------------------------------------------------------------------- colours


def segmentation_palette(num_classes: int) -> np.ndarray:
    """(K, 3) colours in [0, 1], none of them black (black is the ignore colour)."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if num_classes <= 20:
        cmap = matplotlib.colormaps["tab20"]
        order = list(range(0, 20, 2)) + list(range(1, 20, 2))  # the saturated tab20 colours first
        return np.array([cmap(i)[:3] for i in order[:num_classes]], dtype=np.float32)
    golden = 0.618033988749895
    colours = []
    for k in range(num_classes):
        value = 0.95 if k % 2 == 0 else 0.7
        colours.append(colorsys.hsv_to_rgb((k * golden) % 1.0, 0.7, value))
    return np.array(colours, dtype=np.float32)


def colorize_segmentation(class_ids: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) RGB; ids outside [0, K) (the ignore index) are black."""
    class_ids = np.asarray(class_ids)
    out = np.zeros((*class_ids.shape, 3), dtype=np.float32)
    valid = (class_ids >= 0) & (class_ids < len(palette))
    out[valid] = palette[class_ids[valid].astype(np.int64)]
    return out


def colorize_scalar(
    values: np.ndarray, vmin: float, vmax: float, *, cmap: str = "viridis", valid: np.ndarray | None = None
) -> np.ndarray:
    """(H, W) values -> (H, W, 3) through `cmap` on [vmin, vmax] (clipped); invalid pixels black."""
    scale = vmax - vmin if vmax > vmin else 1.0
    normed = np.clip((np.asarray(values, dtype=np.float64) - vmin) / scale, 0.0, 1.0)
    out = matplotlib.colormaps[cmap](normed)[..., :3].astype(np.float32)
    if valid is not None:
        out[~valid] = 0.0
    return out


def colorize_normals(normals: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(3, H, W) unit normals in [-1, 1] -> (H, W, 3) RGB = (n + 1) / 2; invalid pixels black."""
    out = np.clip((np.moveaxis(np.asarray(normals, dtype=np.float32), 0, -1) + 1.0) / 2.0, 0.0, 1.0)
    if valid is not None:
        out[~valid] = 0.0
    return out


def colorize_grey(values: np.ndarray, vmin: float, vmax: float, valid: np.ndarray | None = None) -> np.ndarray:
    """(C, H, W) values -> (H, W, 3) grey levels of the channel mean on [vmin, vmax]; invalid pixels black."""
    mean = np.asarray(values, dtype=np.float64).mean(axis=0)
    scale = vmax - vmin if vmax > vmin else 1.0
    grey = np.clip((mean - vmin) / scale, 0.0, 1.0).astype(np.float32)
    out = np.repeat(grey[..., None], 3, axis=-1)
    if valid is not None:
        out[~valid] = 0.0
    return out


# ---------------------------------------------------------------------------------------------- the grid


@dataclasses.dataclass
class QualitativeGrid:
    """RGB cells (float32 in [0, 1], (H, W, 3)), rows = samples, columns = input then per task GT + models."""

    cells: list[list[np.ndarray]]
    column_titles: list[str]
    row_titles: list[str]
    tasks: list[str]
    models: list[str]
    legends: dict[str, list[tuple[str, tuple[float, float, float]]]] = dataclasses.field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.cells), len(self.column_titles)

    def column(self, task: str, source: str) -> int:
        """Column index of `source` ("ground truth" or a model name) for `task`; 0 is the input."""
        if task not in self.tasks:
            raise KeyError(f"unknown task {task!r}; the grid has {self.tasks}")
        sources = ["ground truth", *self.models]
        if source not in sources:
            raise KeyError(f"unknown column {source!r}; expected one of {sources}")
        return 1 + self.tasks.index(task) * len(sources) + sources.index(source)


def _numpy(tensor: Any) -> np.ndarray:
    if isinstance(tensor, torch.Tensor):
        return tensor.detach().float().cpu().numpy() if tensor.is_floating_point() else tensor.detach().cpu().numpy()
    return np.asarray(tensor)


def _specs(task_specs: Any) -> dict[str, TaskSpec]:
    """Resolved specs (defaults such as depth's invalid value 0 filled in) from a config or a mapping."""
    if hasattr(task_specs, "task_specs"):  # a SimoConfig: already resolved
        return task_specs.task_specs
    out = {}
    for name, spec in dict(task_specs).items():
        spec = TaskSpec.from_dict(name, spec)
        out[name] = spec.resolved(name, max(spec.layers or [1]))
    return out


def _as_channels(array: np.ndarray, channels: int) -> np.ndarray:
    """One sample's regression map as (C, H, W)."""
    return array[None] if array.ndim == 2 and channels == 1 else array


def _valid(spec: TaskSpec, label: np.ndarray) -> np.ndarray:
    if spec.invalid_value is None:
        return np.ones(label.shape[-2:], dtype=bool)
    return (label != spec.invalid_value).any(axis=0)


def _row_range(ground_truth: np.ndarray | None, valid: np.ndarray | None, predictions: list[np.ndarray]):
    """The shared colour range of one row and task: robust range of valid ground truth, else of predictions."""
    pool = None
    if ground_truth is not None:
        reduced = ground_truth.mean(axis=0)
        pool = reduced[valid] if valid is not None else reduced.reshape(-1)
    if pool is None or pool.size == 0:
        pool = np.concatenate([p.mean(axis=0).reshape(-1) for p in predictions]) if predictions else np.zeros(1)
    pool = pool[np.isfinite(pool)]
    if pool.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(pool, [1, 99])
    if high <= low:
        low, high = float(pool.min()), float(pool.max())
    if high <= low:
        high = low + 1e-6
    return float(low), float(high)


def build_qualitative_grid(
    images: torch.Tensor | np.ndarray,
    labels: Mapping[str, Any],
    predictions: Mapping[str, Mapping[str, Any]],
    task_specs: Any,
    *,
    tasks: Sequence[str] | None = None,
    images_normalized: bool = True,
    image_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    image_std: Sequence[float] = IMAGENET_DEFAULT_STD,
    depth_cmap: str = "viridis",
    max_samples: int | None = None,
    sample_names: Sequence[str] | None = None,
) -> QualitativeGrid:
    """The cells of a Figure-4-style grid.

    Args:
        images: (B, 3, H, W) model inputs (normalized with `image_mean`/`image_std` unless `images_normalized` is
            False, in which case floats in [0, 1]).
        labels: task -> ground truth for the batch: (B, H, W) class ids for segmentation, (B, C, H, W) (or (B, H, W)
            for one channel) otherwise, invalid pixels marked as in the task spec. Every shown task needs labels.
        predictions: model name -> task -> (B, K, H, W) logits or (B, H, W) ids for segmentation, (B, C, H, W)
            values otherwise (as `SimoModel` returns). A model without a task shows light-grey cells.
        task_specs: task -> `TaskSpec`/dict, or a `SimoConfig` (its `task_specs`).
        tasks: which tasks, in order (default: those with labels, in `task_specs` order).
    """
    specs = _specs(task_specs)
    tasks = [t for t in specs if t in labels] if tasks is None else list(tasks)
    if not tasks:
        raise ValueError(f"no task to show: labels has {sorted(labels)}, the specs have {sorted(specs)}")
    for task in tasks:
        if task not in specs:
            raise KeyError(f"no task spec for {task!r}; specs have {sorted(specs)}")
        if task not in labels:
            raise KeyError(f"no ground truth for task {task!r}; labels has {sorted(labels)}")
    models = list(predictions)
    images = _numpy(images).astype(np.float32)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    batch = images.shape[0]
    rows = batch if max_samples is None else min(batch, max_samples)
    if images_normalized:
        mean = np.asarray(image_mean, dtype=np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(image_std, dtype=np.float32).reshape(1, 3, 1, 1)
        images = images * std + mean
    images = np.clip(images, 0.0, 1.0)

    gts = {task: _numpy(labels[task]) for task in tasks}
    preds = {model: {task: _numpy(p) for task, p in by_task.items()} for model, by_task in predictions.items()}
    for task in tasks:
        if gts[task].shape[0] != batch:
            raise ValueError(f"labels of task {task!r} have {gts[task].shape[0]} samples, images have {batch}")
        for model in models:
            if task in preds[model] and preds[model][task].shape[0] != batch:
                raise ValueError(
                    f"predictions of {model!r} for task {task!r} have {preds[model][task].shape[0]} samples, "
                    f"images have {batch}"
                )

    palettes = {t: segmentation_palette(specs[t].num_outputs) for t in tasks if specs[t].is_classification}
    legends = {}
    for task, palette in palettes.items():
        names = specs[task].label_names()
        legends[task] = [(name, tuple(float(c) for c in palette[k])) for k, name in enumerate(names)]

    cells: list[list[np.ndarray]] = []
    for i in range(rows):
        row = [np.moveaxis(images[i], 0, -1)]
        for task in tasks:
            spec = specs[task]
            gt = gts[task][i]
            model_maps = [preds[m].get(task) for m in models]
            model_maps = [None if p is None else p[i] for p in model_maps]
            size = gt.shape[-2:]
            blank = np.full((*size, 3), MISSING_CELL, dtype=np.float32)
            if spec.is_classification:
                gt_ids = gt[0] if gt.ndim == 3 else gt
                row.append(colorize_segmentation(np.where(gt_ids == spec.ignore_index, -1, gt_ids), palettes[task]))
                for p in model_maps:
                    if p is None:
                        row.append(blank)
                        continue
                    ids = p.argmax(axis=0) if p.ndim == 3 else p
                    row.append(colorize_segmentation(ids, palettes[task]))
                continue
            gt = _as_channels(gt, spec.num_outputs)
            valid = _valid(spec, gt)
            maps = [None if p is None else _as_channels(p, spec.num_outputs) for p in model_maps]
            if spec.kind == "surface_normals":
                row.append(colorize_normals(gt, valid))
                row += [blank if p is None else colorize_normals(p) for p in maps]
                continue
            low, high = _row_range(gt, valid, [p for p in maps if p is not None])
            if spec.kind in ("depth", "disparity"):
                row.append(colorize_scalar(gt.mean(axis=0), low, high, cmap=depth_cmap, valid=valid))
                row += [
                    blank if p is None else colorize_scalar(p.mean(axis=0), low, high, cmap=depth_cmap) for p in maps
                ]
            else:
                row.append(colorize_grey(gt, low, high, valid))
                row += [blank if p is None else colorize_grey(p, low, high) for p in maps]
        cells.append(row)

    column_titles = ["input"]
    for task in tasks:
        column_titles += [f"{task}\nground truth"] + [f"{task}\n{model}" for model in models]
    if sample_names is not None and len(sample_names) < rows:
        raise ValueError(f"sample_names has {len(sample_names)} names for {rows} rows")
    row_titles = [str(sample_names[i]) if sample_names is not None else f"sample {i}" for i in range(rows)]
    return QualitativeGrid(
        cells=cells, column_titles=column_titles, row_titles=row_titles, tasks=tasks, models=models, legends=legends
    )


@torch.no_grad()
def collect_predictions(
    models: Mapping[str, Any], pixel_values: torch.Tensor, tasks: Sequence[str] | None = None
) -> dict[str, dict[str, torch.Tensor]]:
    """Model name -> task -> prediction for one batch; each model runs the requested tasks it has (eval mode)."""
    out = {}
    for name, model in models.items():
        wanted = [t for t in (tasks or model.task_names) if t in model.task_names]
        was_training = model.training
        model.eval()
        try:
            pixels = pixel_values.to(device=model.device, dtype=model.dtype)
            out[name] = {t: p.cpu() for t, p in model(pixels, tasks=wanted).predictions.items()} if wanted else {}
        finally:
            model.train(was_training)
    return out


def plot_qualitative(
    grid: QualitativeGrid,
    output: str | os.PathLike,
    *,
    title: str | None = None,
    cell_size: float = 1.7,
    options: FigureOptions | None = None,
) -> list[Path]:
    """Draw the grid (one image per cell, column titles on top, sample names on the left) and save it.

    Segmentation tasks get a legend of their class colours (black = ignored) below the grid.
    """
    from matplotlib.patches import Patch

    rows, cols = grid.shape
    if rows == 0:
        raise ValueError("the grid has no row")
    legend_rows = sum(1 + len(entries) // 8 for entries in grid.legends.values())
    figure = new_figure(cell_size * cols + 0.6, cell_size * rows + 0.9 + 0.3 * legend_rows)
    axes = figure.subplots(rows, cols, squeeze=False)
    for i in range(rows):
        for j in range(cols):
            ax = axes[i][j]
            ax.imshow(grid.cells[i][j], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if i == 0:
                ax.set_title(grid.column_titles[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(grid.row_titles[i], fontsize=9)
    for task, entries in grid.legends.items():
        handles = [Patch(facecolor=colour, edgecolor="0.3", label=name) for name, colour in entries]
        handles.append(Patch(facecolor="black", label="ignored"))
        figure.legend(
            handles=handles,
            loc="outside lower center",
            ncols=min(len(handles), 8),
            fontsize=7,
            title=f"{task} classes",
            title_fontsize=8,
            frameon=False,
        )
    figure.suptitle(title or "Qualitative results: input, ground truth and predictions per task")
    return save_figure(figure, output, options)


__all__ = [
    "QualitativeGrid",
    "build_qualitative_grid",
    "collect_predictions",
    "colorize_grey",
    "colorize_normals",
    "colorize_scalar",
    "colorize_segmentation",
    "plot_qualitative",
    "segmentation_palette",
]
