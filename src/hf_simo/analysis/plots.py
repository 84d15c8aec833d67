"""Figures of the paper's analyses, drawn with matplotlib's object API on the Agg canvas (no display, no pyplot
global state, safe in scripts and tests) and written atomically as PNG and SVG.

- `plot_relationships`: one panel per primary task t, every task's normalized performance against λ for
  θ_0 + λ·τ_t (Figures 3, 5, 6);
- `plot_relationship_matrix`: the T×T effect of adding τ_t on task s, annotated (see `relationships`);
- `plot_layer_coefficients`: per-layer merging coefficients per task against the layer index (Figure 2);
- `plot_combinations`: Task Arithmetic's normalized performance of every k-task combination against k (Figure 1).

SVGs keep their text as text (`svg.fonttype: none`), so titles and labels stay searchable and small, and carry no
date, so the same data gives the same file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..atomic import atomic_file
from .relationships import RelationshipMatrix, RelationshipResult


if TYPE_CHECKING:
    from .combinations import CombinationResult


DEFAULT_FORMATS: tuple[str, ...] = ("png", "svg")
SUPPORTED_FORMATS = ("png", "svg", "pdf")
DEFAULT_DPI = 150
MIN_DPI = 120
_RC = {"svg.fonttype": "none", "svg.hashsalt": "hf_simo", "font.size": 10, "axes.titlesize": 11}


def new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas (constrained layout), independent of pyplot's current backend."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def task_colors(tasks: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """One colour per task, stable across panels (tab10, then tab20)."""
    cmap = matplotlib.colormaps["tab10" if len(tasks) <= 10 else "tab20"]
    return {task: cmap(index % cmap.N) for index, task in enumerate(tasks)}


def _output_stem(output: str | os.PathLike, formats: Sequence[str]) -> Path:
    path = Path(output)
    if path.suffix.lower().lstrip(".") in SUPPORTED_FORMATS:
        path = path.with_suffix("")
    if not path.name:
        raise ValueError(f"output must name a file (without or with an extension), got {output!r}")
    return path


@dataclass(frozen=True)
class FigureOptions:
    """How every figure is written: `formats` (png, svg, pdf; each a file) and `dpi` (raster formats). Checked when
    built, so a bad value fails before anything is drawn."""

    formats: tuple[str, ...] = DEFAULT_FORMATS
    dpi: int = DEFAULT_DPI

    def __post_init__(self) -> None:
        formats = [self.formats] if isinstance(self.formats, str) else list(self.formats)
        formats = [f.lower().lstrip(".") for f in formats]
        unknown = [f for f in formats if f not in SUPPORTED_FORMATS]
        if unknown or not formats:
            raise ValueError(f"formats must be a non-empty subset of {list(SUPPORTED_FORMATS)}, got {formats}")
        if self.dpi < MIN_DPI:
            raise ValueError(f"dpi must be >= {MIN_DPI} for readable figures, got {self.dpi}")
        object.__setattr__(self, "formats", tuple(formats))


PNG_ONLY = FigureOptions(formats=("png",))


def save_figure(figure: Figure, output: str | os.PathLike, options: FigureOptions | None = None) -> list[Path]:
    """Write `figure` as `<output>.<format>` for each format of `options`, each atomically
    (`hf_simo.atomic.atomic_file`).

    `output` may carry one of the extensions (it is replaced). Returns the written paths.
    """
    options = options or FigureOptions()
    stem = _output_stem(output, options.formats)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in options.formats:
        target = stem.with_name(f"{stem.name}.{fmt}")
        metadata = {"Date": None} if fmt == "svg" else ({"CreationDate": None} if fmt == "pdf" else None)
        with atomic_file(target) as temporary, matplotlib.rc_context(_RC):
            figure.savefig(temporary, format=fmt, dpi=options.dpi, metadata=metadata)
        written.append(target)
    return written


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) if v is not None and math.isfinite(float(v)) else math.nan for v in values]


def plot_relationships(
    result: RelationshipResult,
    output: str | os.PathLike,
    *,
    title: str | None = None,
    columns: int = 3,
    options: FigureOptions | None = None,
) -> list[Path]:
    """One panel per primary task t: each task's normalized performance (%) against λ in θ_0 + λ·τ_t.

    The primary task's own curve is drawn thicker; the dashed line is the single-task level (100%).
    """
    primaries = list(result.primary_tasks)
    if not primaries:
        raise ValueError("the result has no primary task to plot")
    columns = max(1, min(columns, len(primaries)))
    rows = math.ceil(len(primaries) / columns)
    figure = new_figure(4.4 * columns, 3.4 * rows + 0.8)
    axes = figure.subplots(rows, columns, squeeze=False, sharey=True)
    colors = task_colors(result.tasks)
    lambdas = list(result.lambdas)
    for index, primary in enumerate(primaries):
        ax = axes[index // columns][index % columns]
        curves = result.normalized(primary)
        for task in result.tasks:
            own = task == primary
            ax.plot(
                lambdas,
                [100 * v for v in _finite(curves[task])],
                marker="o",
                markersize=3.5 if own else 2.5,
                linewidth=2.6 if own else 1.4,
                color=colors[task],
                label=task,
                zorder=3 if own else 2,
            )
        ax.axhline(100, color="0.35", linestyle="--", linewidth=1.0, label="single-task level", zorder=1)
        if min(lambdas) <= 1.0 <= max(lambdas):
            ax.axvline(1.0, color="0.6", linestyle=":", linewidth=1.0, zorder=1)
        ax.set_title(f"θ₀ + λ·τ[{primary}]")
        ax.set_xlabel("λ (task-vector coefficient)")
        if index % columns == 0:
            ax.set_ylabel("normalized performance (%)")
        ax.grid(True, alpha=0.3)
    for index in range(len(primaries), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[t], marker="o", markersize=3, linewidth=1.6) for t in result.tasks]
    handles.append(Line2D([], [], color="0.35", linestyle="--", linewidth=1.0))
    labels = [*result.tasks, "single-task level (thick: the added task itself)"]
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), frameon=False)
    figure.suptitle(title or "Task relationships: normalized performance as a task vector is added")
    return save_figure(figure, output, options)


def plot_relationship_matrix(
    matrix: RelationshipMatrix,
    output: str | os.PathLike,
    *,
    title: str | None = None,
    cmap: str = "RdBu",
    options: FigureOptions | None = None,
) -> list[Path]:
    """Heatmap of the T×T matrix with each value written in its cell (points for differences, % for ratios).

    The diverging colour scale is centred on "no effect" (0 points, or 100%) and symmetric, so blue is
    beneficial and red conflicting whatever the magnitudes.
    """
    import numpy as np
    from matplotlib.colors import Normalize

    difference = matrix.mode == "difference"
    values = np.array(
        [[100 * v if v is not None and math.isfinite(v) else np.nan for v in row] for row in matrix.values],
        dtype=float,
    )
    if values.size == 0:
        raise ValueError("the matrix is empty")
    center = 0.0 if difference else 100.0
    spread = np.nanmax(np.abs(values - center)) if np.isfinite(values).any() else 1.0
    spread = float(spread) if spread > 0 else 1.0
    norm = Normalize(vmin=center - spread, vmax=center + spread)
    rows, cols = values.shape
    figure = new_figure(max(4.5, 1.25 * cols + 2.6), max(3.5, 0.9 * rows + 1.8))
    ax = figure.subplots()
    colormap = matplotlib.colormaps[cmap].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=colormap, norm=norm, aspect="auto")
    for i in range(rows):
        for j in range(cols):
            value = values[i, j]
            if math.isnan(value):
                text, color = "n/a", "black"
            else:
                text = f"{round(value, 1) + 0.0:+.1f}" if difference else f"{value:.1f}%"
                r, g, b, _ = colormap(norm(value))
                color = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"
            weight = "bold" if matrix.tasks[j] == matrix.primary_tasks[i] else "normal"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=10, fontweight=weight)
    ax.set_xticks(range(cols), labels=matrix.tasks, rotation=30, ha="right")
    ax.set_yticks(range(rows), labels=[f"τ[{t}]" for t in matrix.primary_tasks])
    ax.set_xlabel("evaluated task s")
    ax.set_ylabel("task vector added")
    unit = "change in normalized performance (points)" if difference else "performance relative to θ₀ (%)"
    figure.colorbar(image, ax=ax, label=unit)
    ax.set_title(title or f"Effect of adding λ·τ_t on each task (λ = {matrix.lam:g}, vs θ₀)")
    return save_figure(figure, output, options)


def plot_layer_coefficients(
    coefficients: Mapping[str, Sequence[float]],
    output: str | os.PathLike,
    *,
    layer_labels: Sequence[str] | None = None,
    title: str | None = None,
    xlabel: str = "layer",
    ylabel: str = "merging coefficient",
    options: FigureOptions | None = None,
) -> list[Path]:
    """Per-layer merging coefficient of each task against the layer index (Figure 2).

    `coefficients`: task -> one coefficient per layer (lists, tuples or 1-D tensors/arrays), all of the same
    length. `layer_labels` names the ticks (e.g. `["emb.", "1", ..., "12", "norm"]`); default 1..L.
    """
    if not isinstance(coefficients, Mapping) or not coefficients:
        raise ValueError("coefficients is empty: pass task -> list of per-layer coefficients")
    series: dict[str, list[float]] = {}
    for task, values in coefficients.items():
        if hasattr(values, "detach"):
            values = values.detach().cpu().reshape(-1).tolist()
        elif hasattr(values, "tolist"):
            values = list(values.tolist())
        try:
            series[task] = [float(v) for v in values]
        except (TypeError, ValueError) as err:
            raise TypeError(f"coefficients of task {task!r} must be numbers, got {values!r}") from err
        if not series[task]:
            raise ValueError(f"coefficients of task {task!r} are empty")
    lengths = {task: len(v) for task, v in series.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"every task needs one coefficient per layer; lengths differ: {lengths}")
    num_layers = next(iter(lengths.values()))
    if layer_labels is not None and len(layer_labels) != num_layers:
        raise ValueError(f"layer_labels has {len(layer_labels)} entries for {num_layers} layers")
    positions = list(range(1, num_layers + 1))
    figure = new_figure(max(5.5, 0.45 * num_layers + 2.5), 3.8)
    ax = figure.subplots()
    colors = task_colors(list(series))
    for task, values in series.items():
        ax.plot(positions, values, marker="o", markersize=4, linewidth=1.8, color=colors[task], label=task)
    ax.set_xticks(positions, labels=list(layer_labels) if layer_labels is not None else [str(p) for p in positions])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(title="task", loc="best")
    ax.set_title(title or "Per-layer merging coefficients per task")
    return save_figure(figure, output, options)


def plot_combinations(
    result: CombinationResult,
    output: str | os.PathLike,
    *,
    title: str | None = None,
    options: FigureOptions | None = None,
) -> list[Path]:
    """Figure 1: one point per k-task combination (Task Arithmetic, α chosen on validation), its normalized
    performance (%) against k, with the mean per k joined by a line and the single-task level dashed."""
    by_k = result.by_k()
    if not by_k:
        raise ValueError("the result has no combination to plot")
    figure = new_figure(max(4.8, 1.1 * len(by_k) + 2.6), 3.8)
    ax = figure.subplots()
    for k, values in by_k.items():
        # spread the points of one k a little so equal values stay visible
        offsets = [0.0] if len(values) == 1 else [0.16 * (2 * i / (len(values) - 1) - 1) for i in range(len(values))]
        ax.scatter(
            [k + o for o in offsets],
            [100 * v for v in _finite(values)],
            s=22,
            color="tab:blue",
            alpha=0.75,
            zorder=3,
            label="one k-task combination" if k == min(by_k) else None,
        )
    means = result.mean_by_k()
    ax.plot(
        list(means),
        [100 * v for v in means.values()],
        color="tab:red",
        marker="D",
        markersize=7,
        markerfacecolor="none",  # hollow: a lone combination (k = T) stays visible inside its mean
        linewidth=1.8,
        label="mean over combinations",
        zorder=4,
    )
    ax.axhline(100, color="0.35", linestyle="--", linewidth=1.0, label="single-task level", zorder=1)
    ax.set_xticks(list(by_k))
    ax.set_xlabel("number of tasks merged (k)")
    ax.set_ylabel("normalized performance (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(title or f"Task Arithmetic on every k-task combination ({len(result.tasks)} tasks)")
    return save_figure(figure, output, options)


def plot_loss_curve(
    records: Sequence[Mapping[str, float]],
    output: str | os.PathLike,
    *,
    title: str | None = None,
    options: FigureOptions = PNG_ONLY,
) -> list[Path]:
    """Training loss (every logged step) and validation loss (every evaluation) against the optimizer step.

    `records`: dicts with ``step`` and ``train_loss`` and/or ``eval_loss`` (as `loss_curve.jsonl` holds them).
    """
    train = [(r["step"], r["train_loss"]) for r in records if r.get("train_loss") is not None]
    evals = [(r["step"], r["eval_loss"]) for r in records if r.get("eval_loss") is not None]
    if not train and not evals:
        raise ValueError("no train_loss or eval_loss in the records: nothing to plot")
    figure = new_figure(6.0, 3.8)
    ax = figure.subplots()
    if train:
        ax.plot(*zip(*train), linewidth=0.8, alpha=0.6, color="tab:blue", label="training (logged steps)")
    if evals:
        ax.plot(*zip(*evals), marker="o", markersize=3, linewidth=1.6, color="tab:orange", label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(title or "Loss curve")
    return save_figure(figure, output, options)


__all__ = [
    "DEFAULT_DPI",
    "DEFAULT_FORMATS",
    "FigureOptions",
    "PNG_ONLY",
    "new_figure",
    "plot_layer_coefficients",
    "plot_loss_curve",
    "plot_relationship_matrix",
    "plot_relationships",
    "save_figure",
    "task_colors",
]
