"""Model cards (README.md) for single-task, merged and re-aligned `SimoModel` checkpoints.

Built as SpanMarker and SetFit build theirs: a `SimoCardData` dataclass (a `huggingface_hub.CardData`) holds what
the card says, its `to_dict` feeds a Jinja template shipped as package data (`hf_simo.model_cards`, the top-level
`model_cards/` folder of the repository) and its `to_yaml` the metadata block; `huggingface_hub.ModelCard
.from_template` renders both. The kind of card is decided from the config: `config.realignment` set -> re-aligned,
else `config.merge` set -> merged, else one task -> single-task (several tasks without either: multi-task).

Metadata decisions:

- `library_name: hf_simo`. `transformers` would make the Hub show an `AutoModel.from_pretrained` snippet that fails
  without `import hf_simo` (the `simo` model type is registered by hf_simo, not by transformers, and there is no
  remote code); the card's own usage section shows the working snippet.
- `pipeline_tag` only where a transformers pipeline runs the model: `depth-estimation` for a single depth or
  disparity task, `image-segmentation` for a single segmentation task; multi-task cards use hf_simo's
  `simo-dense-prediction` pipeline in their snippet and set none.
- Which README is rewritten (`card_needs_writing`): a missing one, transformers' generic auto-generated card, or an
  unedited hf_simo card of another config (an HTML comment under its front matter names the config it describes and
  a digest of the card); a card the user wrote or edited is kept, and so is hf_simo's card of the same config (it
  may carry evaluation results).
- `base_model`: the Hub ids of the merged source checkpoints (`base_model_relation: merge`) for merged and
  re-aligned models, else the pre-trained encoder θ_0 (`finetune`). Local folders are never written to the metadata
  (the Hub could not resolve them) and appear in the text by folder name only, not by absolute path.
- evaluation results go to `model-index` through `huggingface_hub.EvalResult`, one entry per (task, metric):
  `task_type` from the task kind (`image-segmentation`, `depth-estimation`, `image-to-image` for normals and generic
  regression), `metric_type` = hf_simo's metric key (`miou`, `abs_err`, `mean_angle`, ...; values as
  `MultiTaskMetrics.compute` returns them: fractions for mIoU/accuracy, degrees for angles), `metric_name` =
  `"<task> / <metric label>"` (which head the value belongs to), `metric_config` = the task kind (the configuration
  of hf_simo's `evaluate` module). `ModelCard.load(...).data.eval_results` gives them back unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import CardData, EvalResult, ModelCard
from huggingface_hub.repocard_data import eval_results_to_model_index
from huggingface_hub.utils import yaml_dump

from .configuration_simo import DPT_HEAD_OPTIONS, LINEAR_HEAD_OPTIONS, SimoConfig
from .metrics import HIGHER_IS_BETTER, METRIC_LABELS, format_metric, render_table


LIBRARY_NAME = "hf_simo"
TEMPLATE_NAME = "simo_model_card.md.jinja"
DEFAULT_TAGS: tuple[str, ...] = ("hf_simo", "model-merging", "multi-task", "dense-prediction", "dinov2", "vision")
KIND_TAGS = {"single-task": "single-task", "merged": "merged", "realigned": "re-aligned", "multi-task": "multi-task"}
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
# multi-task models get no pipeline_tag: the card's snippet uses hf_simo's `simo-dense-prediction` pipeline.
PIPELINE_TAGS = {
    "semantic_segmentation": "image-segmentation",
    "depth": "depth-estimation",
    "disparity": "depth-estimation",
}
# An HTML comment (invisible on the Hub) under the front matter of every card hf_simo writes: the config the card
# describes, and a digest of the card itself, so a card edited since is recognised as the user's.
_MARKER = re.compile(r"<!-- hf_simo card: config ([0-9a-f]{16}), content ([0-9a-f]{16}) -->\n?")
_UNSIGNED = "content 0000000000000000"
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n(.*)\Z", re.S)
# The sentence transformers' `create_and_tag_model_card` writes into its generic card.
TRANSFORMERS_GENERIC_TEXT = "This is the model card of a 🤗 transformers model that has been pushed on the Hub"
YAML_FIELDS = (
    "library_name",
    "license",
    "tags",
    "base_model",
    "base_model_relation",
    "datasets",
    "metrics",
    "pipeline_tag",
    "model-index",
)
CITATION = """@misc{garciagiraldo2025simo,
  title  = {Single-Input Multi-Output Model Merging: Leveraging Foundation Models for Dense Multi-Task Learning},
  author = {Garcia Giraldo, Juan and Dimitriadis, Nikolaos and Wang, Ke and Frossard, Pascal},
  year   = {2025},
}"""
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_REPO_PLACEHOLDER = "<user>/<model-name>"


def template_path(name: str = TEMPLATE_NAME) -> Path:
    """The card template: from the installed `hf_simo.model_cards` package, else the repository's `model_cards/`."""
    try:
        from importlib.resources import files

        candidate = files("hf_simo.model_cards") / name
        if candidate.is_file():
            return Path(str(candidate))
    except ModuleNotFoundError:  # an editable install that maps only src/ (the folder lives at the repo top)
        pass
    fallback = Path(__file__).resolve().parents[2] / "model_cards" / name
    if fallback.is_file():
        return fallback
    raise FileNotFoundError(
        f"model card template {name!r} not found in the hf_simo.model_cards package nor in {fallback.parent}; "
        "reinstall hf_simo (the templates ship as package data)"
    )


def card_kind(config: SimoConfig) -> str:
    """`realigned`, `merged`, `single-task` or `multi-task` (several tasks trained jointly, no merge record)."""
    if config.realignment:
        return "realigned"
    if config.merge:
        return "merged"
    return "single-task" if len(config.tasks) == 1 else "multi-task"


def config_fingerprint(config: SimoConfig) -> str:
    """16 hex digits identifying what a card describes: tasks, encoder shape, provenance, merge and re-alignment."""
    backbone = config.backbone_config
    described = {
        "tasks": config.tasks,
        "task_order": list(config.tasks),
        "encoder": {
            key: getattr(backbone, key, None)
            for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "patch_size", "image_size")
        },
        "base": [config.base_model_name_or_path, config.base_model_revision],
        "merge": config.merge,
        "realignment": config.realignment,
        "block_adapter": [config.block_adapter, config.block_adapter_rank],
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _content_digest(text: str) -> str:
    """16 hex digits of a card's metadata (parsed, so YAML formatting does not count) and text, marker excluded."""
    text = _MARKER.sub("", text)
    match = _FRONT_MATTER.match(text)
    metadata, body = (yaml.safe_load(match.group(1)) or {}, match.group(2)) if match else ({}, text)
    payload = json.dumps(metadata, sort_keys=True, default=str) + "\n" + body.strip()
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def card_origin(text: str | None) -> str:
    """Who wrote a README: `missing` (none or empty), `generic` (transformers' auto-generated card), `hf_simo`
    (written by this package and unedited since: its marker's digest matches) or `user` (anything else, including an
    hf_simo card someone edited)."""
    if text is None or not text.strip():
        return "missing"
    if TRANSFORMERS_GENERIC_TEXT in text:
        return "generic"
    found = _MARKER.search(text)
    if found is not None and found.group(2) == _content_digest(text):
        return "hf_simo"
    return "user"


def card_needs_writing(text: str | None, config: SimoConfig) -> bool:
    """Whether hf_simo should (re)write a README: missing, transformers' generic card, or an unedited hf_simo card
    that describes another config. A card the user wrote (or edited), or hf_simo's card of this same config (which
    may carry evaluation results), is kept."""
    origin = card_origin(text)
    if origin in ("missing", "generic"):
        return True
    if origin == "hf_simo":
        return _MARKER.search(text).group(1) != config_fingerprint(config)
    return False


def refresh_model_card(folder: str | os.PathLike, config: SimoConfig | None = None, **kwargs: Any) -> bool:
    """Write hf_simo's card into `folder` when `card_needs_writing`; True if it was written. `kwargs` go to
    `build_model_card` (repo_id, eval_results, dataset_name, tags, ...)."""
    readme = Path(folder) / "README.md"
    text = readme.read_text(encoding="utf-8", errors="replace") if readme.is_file() else None
    config = _as_config(folder if config is None else config)
    if not card_needs_writing(text, config):
        return False
    write_model_card(folder, config, **kwargs)
    return True


def is_hub_id(value: Any) -> bool:
    """`org/name` that is not an existing local path: something the Hub could resolve."""
    return isinstance(value, str) and bool(_HUB_ID.match(value)) and not os.path.exists(value)


def _describe_source(name_or_path: str | None) -> dict[str, Any]:
    """How a checkpoint appears in the text: a Hub link, or a local folder by name only (no absolute path)."""
    if not name_or_path:
        return {"text": "unknown", "hub": False}
    if is_hub_id(name_or_path):
        return {"text": f"[{name_or_path}](https://huggingface.co/{name_or_path})", "hub": True}
    return {"text": f"local folder `{Path(str(name_or_path)).name or name_or_path}`", "hub": False}


def _format_value(value: Any, limit: int = 120) -> str:
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


def _as_config(model_or_config: Any) -> SimoConfig:
    if isinstance(model_or_config, SimoConfig):
        return model_or_config
    config = getattr(model_or_config, "config", None)
    if isinstance(config, SimoConfig):
        return config
    if isinstance(model_or_config, (str, os.PathLike)):
        folder = Path(model_or_config)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} has no config.json; pass a SimoModel, a SimoConfig or a model folder")
        loaded = SimoConfig.from_pretrained(folder)
        if not isinstance(loaded, SimoConfig):
            raise ValueError(f"{folder}/config.json is not a SimoModel config (model_type 'simo')")
        return loaded
    raise TypeError(f"expected a SimoModel, a SimoConfig or a model folder, got {type(model_or_config).__name__}")


def _parameter_counts(config: SimoConfig) -> dict[str, int]:
    """Encoder and per-head parameter counts, from the config alone (modules built on the meta device)."""
    import torch

    from .modeling_simo import SimoModel

    try:
        with torch.device("meta"):
            model = SimoModel(config)
    except Exception:  # a config other code cannot build yet (e.g. newer options): the card still renders
        return {}
    counts = {"encoder": sum(p.numel() for p in model.dinov2.parameters())}
    for name, head in model.heads.items():
        counts[f"head:{name}"] = sum(p.numel() for p in head.parameters())
    return counts


def _millions(count: int | None) -> str:
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
            raise KeyError(
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


@dataclasses.dataclass
class SimoCardData(CardData):
    """What a hf_simo model card says; the config supplies the rest (tasks, heads, base, merge, re-alignment).

    Args:
        config: the model's `SimoConfig` (set by `build_model_card`).
        model_id: Hub repo id used in the usage snippet (e.g. `"org/nyuv2-ta-realigned"`).
        model_name: pretty name (default: derived from the kind, the tasks and the dataset).
        license: e.g. `"apache-2.0"`.
        dataset_name / dataset_id / dataset_split / dataset_revision: the evaluation (and re-alignment) data.
        eval_results: task -> {metric: value} as `MultiTaskMetrics.compute` returns it, or `EvalResult`s.
        results_table: a Markdown table (`render_table` output), or rows method -> task -> primary metric value,
            rendered with `render_table` against `results_baseline`.
        tags: extra tags (added to `DEFAULT_TAGS` and the kind's tag).
        description: an optional paragraph placed under the title.
    """

    config: SimoConfig | None = dataclasses.field(default=None, repr=False)
    model_id: str | None = None
    model_name: str | None = None
    license: str | None = None
    dataset_name: str | None = None
    dataset_id: str | None = None
    dataset_split: str | None = None
    dataset_revision: str | None = None
    eval_results: Mapping[str, Mapping[str, float]] | list[EvalResult] | None = None
    results_table: str | Mapping[str, Mapping[str, float]] | None = None
    results_baseline: str = "Task-Specific"
    tags: list[str] | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if self.model_id is not None and not is_hub_id(self.model_id):
            raise ValueError(f"model_id must be a Hub repo id 'org/name', got {self.model_id!r}")

    # ------------------------------------------------------------------ derived values

    @property
    def kind(self) -> str:
        return card_kind(self._config())

    def _config(self) -> SimoConfig:
        if self.config is None:
            raise ValueError("SimoCardData needs the model's config (build it with build_model_card)")
        return self.config

    def default_model_name(self) -> str:
        config, kind = self._config(), self.kind
        tasks = ", ".join(config.task_names)
        if kind == "single-task":
            name = f"DINOv2 {KIND_LABELS[config.tasks[config.task_names[0]]['kind']]} ({config.task_names[0]})"
        elif kind == "merged":
            name = f"SIMO merged DINOv2 ({_method(config)}) for {tasks}"
        elif kind == "realigned":
            mode = (config.realignment or {}).get("mode")
            name = f"SIMO merged DINOv2 ({_method(config)}{f' + {mode}' if mode else ''} re-alignment) for {tasks}"
        else:
            name = f"Multi-task DINOv2 for {tasks}"
        if self.dataset_name or self.dataset_id:
            name += f" on {self.dataset_name or self.dataset_id}"
        return name

    def eval_result_list(self) -> list[EvalResult]:
        if not self.eval_results:
            return []
        if isinstance(self.eval_results, Mapping):
            return eval_results_from_metrics(
                self.eval_results,
                self._config(),
                dataset_name=self.dataset_name,
                dataset_id=self.dataset_id,
                dataset_split=self.dataset_split,
                dataset_revision=self.dataset_revision,
            )
        results = list(self.eval_results)
        if not all(isinstance(r, EvalResult) for r in results):
            raise TypeError("eval_results must be task -> {metric: value} or a list of huggingface_hub.EvalResult")
        return results

    def base_models(self) -> tuple[list[str], str | None]:
        config = self._config()
        sources = [s.get("name_or_path") for s in (config.merge or {}).get("sources", [])]
        hub_sources = list(dict.fromkeys(s for s in sources if is_hub_id(s)))
        merged = self.kind in ("merged", "realigned")
        if merged and len(hub_sources) >= 2:
            return hub_sources, "merge"
        if is_hub_id(config.base_model_name_or_path):
            # a merge of local checkpoints: name θ_0 and let the Hub infer the relation
            return [config.base_model_name_or_path], None if merged else "finetune"
        return [], None

    def all_tags(self) -> list[str]:
        config = self._config()
        tags = list(DEFAULT_TAGS) + [KIND_TAGS[self.kind]]
        tags += [TASK_TYPES[spec["kind"]] for spec in config.tasks.values()]
        tags += list(self.tags or [])
        return list(dict.fromkeys(tags))

    def results_markdown(self) -> str | None:
        if self.results_table is None:
            return None
        if isinstance(self.results_table, str):
            return self.results_table.strip()
        config = self._config()
        rows = {method: dict(values) for method, values in self.results_table.items()}
        tasks = list(rows.get(self.results_baseline, {}))
        missing = [t for t in tasks if t not in config.tasks]
        if missing:
            raise KeyError(f"results_table has task(s) {missing} the model does not have ({config.task_names})")
        metric_names = {task: config.tasks[task]["metric"] for task in tasks}
        return render_table(rows, self.results_baseline, metric_names).strip()

    # ------------------------------------------------------------------ CardData interface

    def to_dict(self) -> dict[str, Any]:
        """Every template variable; the metadata keys (`YAML_FIELDS`) are among them."""
        config = self._config()
        kind = self.kind
        model_name = self.model_name or self.default_model_name()
        eval_results = self.eval_result_list()
        base_models, relation = self.base_models()
        kinds = [spec["kind"] for spec in config.tasks.values()]
        counts = _parameter_counts(config)
        data: dict[str, Any] = {
            "library_name": LIBRARY_NAME,
            "license": self.license,
            "tags": self.all_tags(),
            "base_model": (base_models[0] if len(base_models) == 1 else base_models) or None,
            "base_model_relation": relation,
            "datasets": [self.dataset_id] if self.dataset_id else None,
            "metrics": list(dict.fromkeys(r.metric_type for r in eval_results)) or None,
            "pipeline_tag": PIPELINE_TAGS.get(kinds[0]) if len(kinds) == 1 else None,
            "model-index": eval_results_to_model_index(model_name, eval_results) if eval_results else None,
        }
        backbone = config.backbone_config
        data.update(
            {
                "kind": kind,
                "model_name": model_name,
                "model_id": self.model_id,
                "repo_id": self.model_id or _REPO_PLACEHOLDER,
                "description": self.description,
                "tasks": [_task_entry(name, spec, counts) for name, spec in config.tasks.items()],
                "encoder": {
                    "hidden_size": backbone.hidden_size,
                    "num_hidden_layers": backbone.num_hidden_layers,
                    "num_attention_heads": backbone.num_attention_heads,
                    "patch_size": backbone.patch_size,
                    "image_size": backbone.image_size,
                    "parameters": _millions(counts.get("encoder")) if counts else None,
                    "block_adapter": getattr(config, "block_adapter", None),
                    "block_adapter_rank": getattr(config, "block_adapter_rank", None),
                },
                "base": {
                    **_describe_source(config.base_model_name_or_path),
                    "revision": config.base_model_revision,
                },
                "merge": _merge_entry(config.merge) if config.merge else None,
                "realignment": _realignment_entry(config.realignment) if config.realignment else None,
                "dataset": {
                    "name": self.dataset_name or self.dataset_id,
                    "id": self.dataset_id,
                    "split": self.dataset_split,
                    "revision": self.dataset_revision,
                },
                "eval_rows": _eval_rows(eval_results, config),
                "results_table": self.results_markdown(),
                "has_eval": bool(eval_results) or self.results_table is not None,
                "citation": CITATION,
                "hf_simo_version": _version(),
                "config_fingerprint": config_fingerprint(config),
            }
        )
        return data

    def to_yaml(self, line_break: str | None = None, original_order: list[str] | None = None) -> str:
        """The metadata block: only `YAML_FIELDS`, without empty values, in that order."""
        data = self.to_dict()
        metadata = {key: data[key] for key in YAML_FIELDS if data.get(key) is not None}
        return yaml_dump(metadata, sort_keys=False, line_break=line_break).strip()


def _version() -> str:
    from .version import __version__

    return __version__


def _method(config: SimoConfig) -> str:
    return str((config.merge or {}).get("method", "unknown method"))


def _task_entry(name: str, spec: Mapping[str, Any], counts: Mapping[str, int]) -> dict[str, Any]:
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
        "head_options": ", ".join(f"{k}={_format_value(v, 40)}" for k, v in head_options.items()),
        "layers": ", ".join(str(layer) for layer in spec["layers"]),
        "loss": spec["loss"],
        "metric": metric,
        "metric_label": METRIC_LABELS.get(metric, metric),
        "arrow": "↑" if HIGHER_IS_BETTER.get(metric, True) else "↓",
        "class_names": list((spec.get("id2label") or {}).values()) or None,
        "parameters": _millions(counts.get(f"head:{name}")) if counts else None,
        "usage": usage,
        "pipeline_usage": pipeline_usage,
    }


def _merge_entry(merge: Mapping[str, Any]) -> dict[str, Any]:
    options = {k: v for k, v in (merge.get("options") or {}).items() if v is not None}
    sources = []
    for source in merge.get("sources") or []:
        described = _describe_source(source.get("name_or_path"))
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
        k: _format_value(v) for k, v in (merge.get("statistics") or {}).items() if isinstance(v, (int, float, str))
    }
    coefficients = merge.get("coefficients")
    return {
        "method": merge.get("method", "unknown"),
        "alpha": merge.get("alpha"),
        "options": [(k, _format_value(v)) for k, v in options.items()],
        "base": {
            **_describe_source(base.get("name_or_path")),
            "revision": base.get("revision"),
            "commit": base.get("commit"),
        }
        if base
        else None,
        "sources": sources,
        "coefficients": _format_value(coefficients, 200) if coefficients is not None else None,
        "extra": [
            (k, _format_value(v))
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


def _realignment_entry(realignment: Mapping[str, Any]) -> dict[str, Any]:
    keys = [k for k in _REALIGNMENT_ORDER if k in realignment] + sorted(
        k for k in realignment if k not in _REALIGNMENT_ORDER
    )
    items = []
    for key in keys:
        value = realignment[key]
        if value is None:
            continue
        if key == "trainable_parameters" and isinstance(value, int):
            text = f"{value:,} ({_millions(value)})"
        else:
            text = _format_value(value)
        items.append((key.replace("_", " "), text))
    return {"mode": realignment.get("mode"), "settings": items}


def _eval_rows(eval_results: Sequence[EvalResult], config: SimoConfig) -> list[dict[str, Any]]:
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


def build_model_card(
    model_or_config: Any,
    *,
    eval_results: Mapping[str, Mapping[str, float]] | list[EvalResult] | None = None,
    results_table: str | Mapping[str, Mapping[str, float]] | None = None,
    results_baseline: str = "Task-Specific",
    dataset_name: str | None = None,
    dataset_id: str | None = None,
    dataset_split: str | None = None,
    dataset_revision: str | None = None,
    repo_id: str | None = None,
    model_name: str | None = None,
    license: str | None = None,
    tags: Sequence[str] | None = None,
    description: str | None = None,
) -> ModelCard:
    """The model card of a `SimoModel` (or its config, or a saved folder), rendered from the package template.

    Without `eval_results` and `results_table` the card has no evaluation section and no `model-index`.
    """
    config = _as_config(model_or_config)
    card_data = SimoCardData(
        config=config,
        model_id=repo_id,
        model_name=model_name,
        license=license,
        dataset_name=dataset_name,
        dataset_id=dataset_id,
        dataset_split=dataset_split,
        dataset_revision=dataset_revision,
        eval_results=eval_results,
        results_table=results_table,
        results_baseline=results_baseline,
        tags=list(tags) if tags else None,
        description=description,
    )
    card = ModelCard.from_template(card_data, template_path=str(template_path()))
    text = str(card)
    return ModelCard(text.replace(_UNSIGNED, f"content {_content_digest(text)}", 1))


def write_model_card(folder: str | os.PathLike, model_or_config: Any = None, **kwargs: Any) -> Path:
    """Render the card (see `build_model_card`) and write `<folder>/README.md` atomically; returns its path.

    `model_or_config` defaults to the folder's own `config.json`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; save the model first (model.save_pretrained(folder))")
    card = build_model_card(folder if model_or_config is None else model_or_config, **kwargs)
    target = folder / "README.md"
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".README.md.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(str(card))
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


__all__ = [
    "CITATION",
    "DEFAULT_TAGS",
    "LIBRARY_NAME",
    "SimoCardData",
    "build_model_card",
    "card_kind",
    "eval_results_from_metrics",
    "is_hub_id",
    "metrics_from_eval_results",
    "template_path",
    "write_model_card",
]
