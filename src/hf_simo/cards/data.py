"""`SimoCardData`: what a hf_simo model card says (a `huggingface_hub.CardData`); the config supplies the rest.
Its `to_dict` feeds the Jinja template, its `to_yaml` the metadata block (pure: `hf_simo.cards.io` renders and
writes)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from huggingface_hub import CardData, EvalResult
from huggingface_hub.repocard_data import eval_results_to_model_index
from huggingface_hub.utils import yaml_dump

from ..configuration_simo import SimoConfig
from ..errors import OptionError, UnknownTaskError
from ..metrics import render_table
from ..version import __version__
from .origin import config_fingerprint
from .sections import (
    KIND_LABELS,
    TASK_TYPES,
    card_kind,
    describe_source,
    eval_results_from_metrics,
    eval_rows,
    is_hub_id,
    merge_entry,
    method_name,
    millions,
    realignment_entry,
    task_entry,
)


LIBRARY_NAME = "hf_simo"
DEFAULT_TAGS: tuple[str, ...] = ("hf_simo", "model-merging", "multi-task", "dense-prediction", "dinov2", "vision")
KIND_TAGS = {"single-task": "single-task", "merged": "merged", "realigned": "re-aligned", "multi-task": "multi-task"}
# The transformers pipeline a single-task model of each kind runs in (after `import hf_simo`); other kinds and
# multi-task models get no pipeline_tag: the card's snippet uses hf_simo's `simo-dense-prediction` pipeline.
PIPELINE_TAGS = {
    "semantic_segmentation": "image-segmentation",
    "depth": "depth-estimation",
    "disparity": "depth-estimation",
}
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
_REPO_PLACEHOLDER = "<user>/<model-name>"


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
        parameter_counts: ``{"encoder": n, "head:<task>": n}``, shown in the card when given (`build_model_card`
            counts them from the model or the folder's safetensors headers).
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
    parameter_counts: Mapping[str, int] | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.tags = list(self.tags) if self.tags else None
        if self.model_id is not None and not is_hub_id(self.model_id):
            raise OptionError(f"model_id must be a Hub repo id 'org/name', got {self.model_id!r}")

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
            name = f"SIMO merged DINOv2 ({method_name(config)}) for {tasks}"
        elif kind == "realigned":
            mode = (config.realignment or {}).get("mode")
            name = f"SIMO merged DINOv2 ({method_name(config)}{f' + {mode}' if mode else ''} re-alignment) for {tasks}"
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
            raise UnknownTaskError(
                f"results_table has task(s) {missing} the model does not have ({config.task_names})"
            )
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
        counts = dict(self.parameter_counts or {})
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
                "tasks": [task_entry(name, spec, counts) for name, spec in config.tasks.items()],
                "encoder": {
                    "hidden_size": backbone.hidden_size,
                    "num_hidden_layers": backbone.num_hidden_layers,
                    "num_attention_heads": backbone.num_attention_heads,
                    "patch_size": backbone.patch_size,
                    "image_size": backbone.image_size,
                    "parameters": millions(counts.get("encoder")) if counts else None,
                    "block_adapter": getattr(config, "block_adapter", None),
                    "block_adapter_rank": getattr(config, "block_adapter_rank", None),
                },
                "base": {
                    **describe_source(config.base_model_name_or_path),
                    "revision": config.base_model_revision,
                },
                "merge": merge_entry(config.merge) if config.merge else None,
                "realignment": realignment_entry(config.realignment) if config.realignment else None,
                "dataset": {
                    "name": self.dataset_name or self.dataset_id,
                    "id": self.dataset_id,
                    "split": self.dataset_split,
                    "revision": self.dataset_revision,
                },
                "eval_rows": eval_rows(eval_results, config),
                "results_table": self.results_markdown(),
                "has_eval": bool(eval_results) or self.results_table is not None,
                "citation": CITATION,
                "hf_simo_version": __version__,
                "config_fingerprint": config_fingerprint(config),
            }
        )
        return data

    def to_yaml(self, line_break: str | None = None, original_order: list[str] | None = None) -> str:
        """The metadata block: only `YAML_FIELDS`, without empty values, in that order."""
        data = self.to_dict()
        metadata = {key: data[key] for key in YAML_FIELDS if data.get(key) is not None}
        return yaml_dump(metadata, sort_keys=False, line_break=line_break).strip()


__all__ = ["CITATION", "DEFAULT_TAGS", "KIND_TAGS", "LIBRARY_NAME", "PIPELINE_TAGS", "SimoCardData", "YAML_FIELDS"]
