"""Figures of one image's predictions (what `hf-simo predict` writes): one panel per task, and a side-by-side grid.

Colours follow the qualitative grids (`hf_simo.analysis.qualitative`): segmentation classes from the same palette,
here blended over the image with a legend of the class names present; depth, disparity and one-channel regression
through viridis on the 2nd-98th percentile range with a colour bar (its label says what the values are); surface
normals as RGB = (n + 1) / 2 with a note of the convention; multi-channel regression as RGB (3 channels) or the
channel mean. Figures are matplotlib objects on the Agg canvas; `save_figure` writes them atomically.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..configuration_simo import TaskSpec
from .plots import new_figure
from .qualitative import colorize_normals, colorize_segmentation, segmentation_palette


OVERLAY_ALPHA = 0.55
_VALUE_LABELS = {"depth": "depth", "disparity": "disparity", "regression": "value"}


def _numpy(value) -> np.ndarray:
    return value.detach().float().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _range(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [2, 98])
    return (float(low), float(high)) if high > low else (float(finite.min()), float(finite.max()) + 1e-6)


def draw_task(ax, figure: Figure, image: np.ndarray, name: str, spec: TaskSpec, prediction, *, legend: bool = True):
    """Draw one task's (H, W) class ids / (H, W) values / (C, H, W) values on `ax`; returns nothing."""
    value = _numpy(prediction)
    ax.set_xticks([])
    ax.set_yticks([])
    kind = spec.kind.replace("_", " ")
    ax.set_title(name if name.replace("_", " ") in kind else f"{name} ({kind})", fontsize=9)
    if spec.kind == "semantic_segmentation":
        palette = segmentation_palette(spec.num_outputs)
        colours = colorize_segmentation(value.astype(np.int64), palette)
        ax.imshow((1 - OVERLAY_ALPHA) * image + OVERLAY_ALPHA * colours, interpolation="nearest")
        if legend:
            names = spec.label_names()
            present = [int(k) for k in np.unique(value) if 0 <= k < spec.num_outputs]
            handles = [Patch(facecolor=palette[k], edgecolor="0.3", label=names[k]) for k in present]
            ax.legend(
                handles=handles,
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
                fontsize=7,
                title="classes",
                title_fontsize=8,
                frameon=False,
            )
        return
    if spec.kind == "surface_normals":
        ax.imshow(colorize_normals(value), interpolation="nearest")
        ax.set_xlabel("RGB = (n + 1) / 2", fontsize=7)
        return
    if value.ndim == 3 and value.shape[0] == 3:
        low, high = _range(value)
        ax.imshow(np.clip((np.moveaxis(value, 0, -1) - low) / (high - low), 0, 1), interpolation="nearest")
        ax.set_xlabel(f"channels as RGB, range [{low:.3g}, {high:.3g}]", fontsize=7)
        return
    if value.ndim == 3:
        value = value.mean(axis=0)
    low, high = _range(value)
    shown = ax.imshow(value, cmap="viridis", vmin=low, vmax=high, interpolation="nearest")
    bar = figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    label = _VALUE_LABELS.get(spec.kind, "value")
    bar.set_label(label if value.ndim == 2 and spec.num_outputs == 1 else f"mean {label}", fontsize=8)
    bar.ax.tick_params(labelsize=7)


def _size(image: np.ndarray, panels: int) -> tuple[float, float]:
    height, width = image.shape[:2]
    panel_width = 3.2
    return panel_width * panels + 1.2 * panels, panel_width * height / width + 0.8


def plot_task(image: np.ndarray, name: str, spec: TaskSpec, prediction) -> Figure:
    """One task's prediction for an (H, W, 3) image in [0, 1] (segmentation overlaid on it)."""
    figure = new_figure(*_size(image, 1))
    draw_task(figure.subplots(), figure, image, name, spec, prediction)
    return figure


def plot_predictions(
    image: np.ndarray, predictions: Mapping[str, object], specs: Mapping[str, TaskSpec], title: str | None = None
) -> Figure:
    """The input and every task's prediction side by side."""
    figure = new_figure(*_size(image, 1 + len(predictions)))
    axes = figure.subplots(1, 1 + len(predictions), squeeze=False)[0]
    axes[0].imshow(image, interpolation="nearest")
    axes[0].set_title("input", fontsize=9)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    for ax, (name, prediction) in zip(axes[1:], predictions.items()):
        draw_task(ax, figure, image, name, specs[name], prediction)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


__all__ = ["draw_task", "plot_predictions", "plot_task"]
