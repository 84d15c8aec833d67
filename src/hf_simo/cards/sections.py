"""The pure pieces of a model card: task, merge, re-alignment and evaluation entries of the template, the
`EvalResult` conversions (model-index round trip), and the naming helpers (no network; the only files read are
those of an encoder shipped with hf_simo, to name it by its digest)."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult

from ..configuration_simo import DPT_HEAD_OPTIONS, LINEAR_HEAD_OPTIONS, SimoConfig
from ..encoders import shipped_encoder_identity
from ..errors import UnknownTaskError
from ..metrics import HIGHER_IS_BETTER, METRIC_LABELS, format_metric


TASK_TYPES = {
    "semantic_segmentation": "image-segmentation",
    "depth": "depth-estimation",
    "disparity": "depth-estimation",
    "surface_normals": "image-to-image",
    "regression": "image-to-image",
}
# One pretty name per task type: model-index groups results by task type, so the name must not depend on the task.
TASK_TYPE_NAMES = {
    "image-segmentation": "Semantic Segmentation",
    "depth-estimation": "Depth Estimation",
    "image-to-image": "Dense Regression",
}
KIND_LABELS = {
    "semantic_segmentation": "semantic segmentation",
    "depth": "depth estimation",
    "disparity": "disparity estimation",
    "surface_normals": "surface normal estimation",
    "regression": "dense regression",
}
# The transformers pipeline a single-task model of each kind runs in (after `import hf_simo`); other kinds and
HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def card_kind(config: SimoConfig) -> str:
    """`realigned`, `merged`, `single-task` or `multi-task` (several tasks trained jointly, no merge record)."""
    if config.realignment:
        return "realigned"
    if config.merge:
        return "merged"
    return "single-task" if len(config.tasks) == 1 else "multi-task"


def is_hub_id(value: Any) -> bool:
    """`org/name` that is not an existing local path: something the Hub could resolve."""
    return isinstance(value, str) and bool(HUB_ID_PATTERN.match(value)) and not os.path.exists(value)


def describe_source(name_or_path: str | None) -> dict[str, Any]:
    """How a checkpoint appears in the text: the encoder shipped with hf_simo (by name, hf_simo version and digest:
    its recorded path only says `embedded`, and a reader needs to know which weights), a Hub link, or a local
    folder by name only (no absolute path)."""
    if not name_or_path:
        return {"text": "unknown", "hub": False}
    shipped = shipped_encoder_identity(name_or_path)
    if shipped is not None:
        return {"text": shipped_encoder_text(shipped), "hub": False, "shipped": shipped}
    if is_hub_id(name_or_path):
        return {"text": f"[{name_or_path}](https://huggingface.co/{name_or_path})", "hub": True}
    return {"text": f"local folder `{Path(str(name_or_path)).name or name_or_path}`", "hub": False}


def shipped_encoder_text(shipped: Mapping[str, Any]) -> str:
    """`shipped_encoder_identity`'s answer as card text."""
    version = f" {shipped['version']}" if shipped.get("version") else ""
    text = (
        f"the encoder shipped with hf_simo{version} (`hf_simo.encoders`, `{shipped['name']}`; "
        f"`model.safetensors` SHA-256 `{shipped['digest']}…`)"
    )
    if shipped.get("provisional"):
        text += ", **provisional** (so marked in its `provenance.json`: a later hf_simo may ship other weights as it)"
    return text


def format_value(value: Any, limit: int = 120) -> str:
    """A hyper-parameter as Markdown-safe text (numbers compact, long structures truncated)."""
    if isinstance(value, bool) or value is None:
        text = str(value)
    elif isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def millions(count: int | None) -> str:
    if count is None:
        return "?"
    return f"{count / 1e6:.1f}M" if count >= 1e5 else f"{count / 1e3:.1f}k"


def eval_results_from_metrics(
    results: Mapping[str, Mapping[str, float]],
    config: SimoConfig,
    *,
    dataset_name: str | None = None,
    dataset_id: str | None = None,
    dataset_split: str | None = None,
    dataset_revision: str | None = None,
) -> list[EvalResult]:
    """`MultiTaskMetrics.compute()` output (task -> {metric: value}) -> one `EvalResult` per finite value."""
    out = []
    for task, metrics in results.items():
        if task not in config.tasks:
            raise UnknownTaskError(
                f"evaluation results for task {task!r}, which the model does not have ({config.task_names})"
            )
        kind = config.tasks[task]["kind"]
        task_type = TASK_TYPES[kind]
        for metric, value in metrics.items():
            if hasattr(value, "item"):
                value = value.item()
            if value is None or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
                continue
            out.append(
                EvalResult(
                    task_type=task_type,
                    task_name=TASK_TYPE_NAMES[task_type],
                    dataset_type=dataset_id or _slug(dataset_name) or "unknown",
                    dataset_name=dataset_name or dataset_id or "Unknown",
                    dataset_split=dataset_split,
                    dataset_revision=dataset_revision,
                    metric_type=metric,
                    metric_value=float(value),
                    metric_name=f"{task} / {METRIC_LABELS.get(metric, metric)}",
                    metric_config=kind,
                )
            )
    return out


def metrics_from_eval_results(eval_results: Sequence[EvalResult]) -> dict[str, dict[str, float]]:
    """The inverse of `eval_results_from_metrics` (e.g. on `ModelCard.load(...).data.eval_results`)."""
    out: dict[str, dict[str, float]] = {}
    for result in eval_results:
        task = (result.metric_name or "").split(" / ", 1)[0] or result.task_type
        out.setdefault(task, {})[result.metric_type] = result.metric_value
    return out


def _slug(name: str | None) -> str | None:
    if not name:
        return None
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or None


def method_name(config: SimoConfig) -> str:
    return str((config.merge or {}).get("method", "unknown method"))


def task_entry(name: str, spec: Mapping[str, Any], counts: Mapping[str, int]) -> dict[str, Any]:
    kind = spec["kind"]
    outputs = spec["num_outputs"]
    if kind == "semantic_segmentation":
        outputs_text = f"{outputs} classes (ignore index {spec['ignore_index']})"
    else:
        outputs_text = f"{outputs} channel{'s' if outputs != 1 else ''}"
        if spec.get("invalid_value") is not None:
            outputs_text += f" (invalid = {spec['invalid_value']:g})"
    metric = spec["metric"]
    usage = {
        "semantic_segmentation": "(H, W) class ids",
        "depth": "(H, W) depth, in the units of the training labels",
        "disparity": "(H, W) disparity",
        "surface_normals": "(3, H, W) unit normals",
    }.get(kind, f"({outputs}, H, W) values")
    pipeline_usage = {
        "semantic_segmentation": "[{'label', 'mask', 'score'}, ...]: one mask per class present",
        "depth": "{'predicted_depth': (H, W) tensor, 'depth': PIL image}",
        "disparity": "{'predicted_depth': (H, W) disparity, 'depth': PIL image}",
        "surface_normals": "{'predicted_normals': (3, H, W) unit vectors, 'normals': RGB image}",
    }.get(kind, f"{{'predicted_values': ({outputs}, H, W) tensor}}")
    defaults = DPT_HEAD_OPTIONS if spec["head"] == "dpt" else LINEAR_HEAD_OPTIONS
    head_options = {k: v for k, v in spec.get("head_options", {}).items() if k not in defaults or v != defaults[k]}
    return {
        "name": name,
        "kind": kind,
        "kind_label": KIND_LABELS[kind],
        "outputs": outputs_text,
        "head": "DPT" if spec["head"] == "dpt" else "linear",
        "head_options": ", ".join(f"{k}={format_value(v, 40)}" for k, v in head_options.items()),
        "layers": ", ".join(str(layer) for layer in spec["layers"]),
        "loss": spec["loss"],
        "metric": metric,
        "metric_label": METRIC_LABELS.get(metric, metric),
        "arrow": "↑" if HIGHER_IS_BETTER.get(metric, True) else "↓",
        "class_names": list((spec.get("id2label") or {}).values()) or None,
        "parameters": millions(counts.get(f"head:{name}")) if counts else None,
        "usage": usage,
        "pipeline_usage": pipeline_usage,
    }


def merge_entry(merge: Mapping[str, Any]) -> dict[str, Any]:
    options = {k: v for k, v in (merge.get("options") or {}).items() if v is not None}
    sources = []
    for source in merge.get("sources") or []:
        described = describe_source(source.get("name_or_path"))
        sources.append(
            {
                "task": source.get("task", "?"),
                "source": described["text"],
                "revision": source.get("revision"),
                "commit": source.get("commit"),
                "source_task": source.get("source_task"),
            }
        )
    base = merge.get("base") or {}
    statistics = {
        k: format_value(v) for k, v in (merge.get("statistics") or {}).items() if isinstance(v, (int, float, str))
    }
    coefficients = merge.get("coefficients")
    return {
        "method": merge.get("method", "unknown"),
        "alpha": merge.get("alpha"),
        "options": [(k, format_value(v)) for k, v in options.items()],
        "base": {
            **describe_source(base.get("name_or_path")),
            "revision": base.get("revision"),
            "commit": base.get("commit"),
        }
        if base
        else None,
        "sources": sources,
        "coefficients": format_value(coefficients, 200) if coefficients is not None else None,
        "extra": [
            (k, format_value(v))
            for k, v in merge.items()
            if k
            not in (
                "method",
                "alpha",
                "options",
                "sources",
                "base",
                "statistics",
                "coefficients",
                "coefficient_groups",
            )
            and v is not None
        ],
        "statistics": list(statistics.items()),
    }


_REALIGNMENT_ORDER = ("mode", "rank", "steps", "epochs", "samples", "trainable_parameters", "learning_rate", "dataset")


def realignment_entry(realignment: Mapping[str, Any]) -> dict[str, Any]:
    keys = [k for k in _REALIGNMENT_ORDER if k in realignment] + sorted(
        k for k in realignment if k not in _REALIGNMENT_ORDER
    )
    items = []
    for key in keys:
        value = realignment[key]
        if value is None:
            continue
        if key == "trainable_parameters" and isinstance(value, int):
            text = f"{value:,} ({millions(value)})"
        else:
            text = format_value(value)
        items.append((key.replace("_", " "), text))
    return {"mode": realignment.get("mode"), "settings": items}


def eval_rows(eval_results: Sequence[EvalResult], config: SimoConfig) -> list[dict[str, Any]]:
    rows = []
    for result in eval_results:
        task = (result.metric_name or "").split(" / ", 1)[0]
        primary = task in config.tasks and config.tasks[task]["metric"] == result.metric_type
        value = result.metric_value
        shown = format_metric(result.metric_type, value) if isinstance(value, (int, float)) else str(value)
        if result.metric_type in ("miou", "pixel_accuracy") or result.metric_type.startswith("within_"):
            shown += " %"
        elif result.metric_type in ("mean_angle", "median_angle"):
            shown += "°"
        arrow = "↑" if HIGHER_IS_BETTER.get(result.metric_type, True) else "↓"
        rows.append(
            {
                "task": task or result.task_type,
                "metric": f"{METRIC_LABELS.get(result.metric_type, result.metric_type)} {arrow}",
                "value": shown,
                "primary": primary,
            }
        )
    return rows


__all__ = [
    "KIND_LABELS",
    "TASK_TYPES",
    "TASK_TYPE_NAMES",
    "card_kind",
    "describe_source",
    "eval_results_from_metrics",
    "eval_rows",
    "format_value",
    "is_hub_id",
    "merge_entry",
    "method_name",
    "metrics_from_eval_results",
    "millions",
    "realignment_entry",
    "shipped_encoder_text",
    "task_entry",
]
