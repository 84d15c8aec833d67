"""`SimoConfig`: one encoder config (DINOv2, DINOv2 with registers or DINOv3; `hf_simo.encoder_families`) plus a mapping of task specs, serialized in `config.json`.

A task spec says everything the model, the losses and the metrics need to know about a task: its kind, its number
of classes or channels, how invalid pixels are marked, which loss and metric to use, which head to build and which
encoder layers feed it. Specs are validated when the config is built, so a typo fails early with an error that names
the task and the field, not deep inside a forward pass.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .encoder_families import ENCODER_FAMILIES, is_encoder_config, supported_encoders
from .errors import TaskSpecError


TASK_KINDS = ("semantic_segmentation", "depth", "disparity", "surface_normals", "regression")
HEAD_TYPES = ("linear", "dpt", "depth_anything")
LOSSES = ("cross_entropy", "l1", "cosine")
METRICS = ("miou", "pixel_accuracy", "abs_err", "rel_err", "ssi_abs_err", "ssi_rel_err", "mean_angle", "median_angle")

# Per kind: default loss, default (primary) metric, losses and metrics that make sense for it.
_KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "semantic_segmentation": {
        "loss": "cross_entropy",
        "metric": "miou",
        "losses": ("cross_entropy",),
        "metrics": ("miou", "pixel_accuracy"),
    },
    "depth": {"loss": "l1", "metric": "abs_err", "losses": ("l1",), "metrics": ("abs_err", "rel_err")},
    # affine-invariant inverse depth (relative Depth Anything): scored after a per-image scale-and-shift alignment;
    # a disparity known in absolute units (Cityscapes, the paper's aErr.) names metric "abs_err", as do checkpoints
    # written before the default changed (a stored metric is kept as is)
    "disparity": {
        "loss": "l1",
        "metric": "ssi_abs_err",
        "losses": ("l1",),
        "metrics": ("ssi_abs_err", "ssi_rel_err", "abs_err", "rel_err"),
    },
    "surface_normals": {
        "loss": "cosine",
        "metric": "mean_angle",
        "losses": ("cosine", "l1"),
        "metrics": ("mean_angle", "median_angle", "abs_err"),
    },
    "regression": {"loss": "l1", "metric": "abs_err", "losses": ("l1",), "metrics": ("abs_err", "rel_err")},
}

# Head options each head type accepts, with their defaults (`None` = derived from the encoder).
LINEAR_HEAD_OPTIONS: dict[str, Any] = {"use_cls_token": True, "dropout": 0.0}
DPT_HEAD_OPTIONS: dict[str, Any] = {
    "neck_hidden_sizes": None,  # default: hidden_size * (1/8, 1/4, 1/2, 1), as DPT-DINOv2 uses
    "reassemble_factors": [4, 2, 1, 0.5],
    "fusion_hidden_size": 256,
    "readout_type": "project",
    "use_batch_norm_in_fusion_residual": False,
    "use_bias_in_fusion_residual": True,
    "add_projection": False,
    "semantic_classifier_dropout": 0.1,
    "hidden_act": "gelu",  # DPTConfig.hidden_act: the activation of the "project" readout
    "layernorm": True,  # feed final-norm(hidden state); False for DPT-DINOv2 (its backbone's apply_layernorm=False)
}
# Options of the `depth_anything` head (transformers' Depth Anything neck + head), named as in DepthAnythingConfig.
DEPTH_ANYTHING_HEAD_OPTIONS: dict[str, Any] = {
    "neck_hidden_sizes": None,  # default: hidden_size * (1/8, 1/4, 1/2, 1)
    "reassemble_factors": [4, 2, 1, 0.5],
    "fusion_hidden_size": 64,
    "head_hidden_size": 32,
    "depth_estimation_type": "relative",  # relative: ReLU; metric: sigmoid; both times max_depth
    "max_depth": 1,
    "layernorm": True,  # the backbone's apply_layernorm
}
HEAD_OPTIONS: dict[str, dict[str, Any]] = {
    "linear": LINEAR_HEAD_OPTIONS,
    "dpt": DPT_HEAD_OPTIONS,
    "depth_anything": DEPTH_ANYTHING_HEAD_OPTIONS,
}


def feature_key(layer: int, layernorm: bool) -> int:
    """Key of one encoder feature in `SimoEncoding.features`: +i is final-norm(hidden_states[i]) (what most heads
    read), -i the raw output of block i (heads with `layernorm: False`, e.g. DPT-DINOv2)."""
    return layer if layernorm else -layer


def default_feature_layers(num_hidden_layers: int, num_features: int = 4) -> list[int]:
    """Encoder blocks that feed the heads: {3, 6, 9, 12} on 12 blocks, evenly spaced on other depths.

    Indices are 1-based block outputs, i.e. indices into `hidden_states` where 0 is the embedding output.
    """
    if num_hidden_layers < 1:
        raise ValueError(f"num_hidden_layers must be >= 1, got {num_hidden_layers}")
    return [max(1, (num_hidden_layers * k) // num_features) for k in range(1, num_features + 1)]


@dataclasses.dataclass
class TaskSpec:
    """What one dense-prediction task is and how the model predicts, trains and scores it.

    Args:
        kind: `semantic_segmentation`, `depth`, `disparity`, `surface_normals` or `regression` (generic dense
            regression with `num_outputs` channels, e.g. Taskonomy edges, keypoints, reconstruction).
        num_outputs: classes for segmentation, channels otherwise (1 for depth/disparity, 3 for normals).
        ignore_index: label value excluded from loss and metrics (segmentation only).
        invalid_value: a pixel is excluded when *all* its label channels equal this value (regression kinds);
            `None` means every pixel is valid.
        loss: `cross_entropy`, `l1` or `cosine` (default per kind).
        metric: primary metric for normalized performance (default per kind: `miou`, `abs_err`, and for
            `disparity` `ssi_abs_err`, the error after aligning each image's prediction by least-squares scale and
            shift, as affine-invariant models such as relative Depth Anything are scored; `abs_err` scores a
            disparity in absolute units, and is what disparity specs stored before this default keep).
        head: `linear` (DINOv2 linear evaluation head), `dpt` (transformers' DPT neck and head) or `depth_anything`
            (transformers' Depth Anything neck and head; depth/disparity only).
        head_options: options of the head type (see `HEAD_OPTIONS`).
        layers: encoder blocks (1-based) that feed the head; default {3, 6, 9, 12} on 12 blocks.
        id2label: optional names of the segmentation classes, class id -> name (transformers' spelling; the legacy
            `class_names` list is read as `id2label`). Shown in model cards, pipeline outputs and plots.
    """

    kind: str
    num_outputs: int | None = None
    ignore_index: int | None = None
    invalid_value: float | None = None
    loss: str | None = None
    metric: str | None = None
    head: str = "linear"
    head_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    layers: list[int] | None = None
    id2label: dict[int, str] | None = None

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any] | TaskSpec) -> TaskSpec:
        if isinstance(data, TaskSpec):
            return copy.deepcopy(data)
        if not isinstance(data, Mapping):
            raise TaskSpecError(
                f"task {name!r}: a task spec must be a mapping or a TaskSpec, got {type(data).__name__}"
            )
        data = dict(data)
        if "class_names" in data:  # the list saved before id2label existed
            names = data.pop("class_names")
            if "id2label" in data and names is not None and data["id2label"] is not None:
                raise TaskSpecError(f"task {name!r}: give 'id2label' or the legacy 'class_names', not both")
            if names is not None:
                if not isinstance(names, (list, tuple)):
                    raise TaskSpecError(f"task {name!r}: field 'class_names' must be a list of names")
                data["id2label"] = dict(enumerate(names))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TaskSpecError(f"task {name!r}: unknown field(s) {unknown}; known fields are {sorted(known)}")
        if "kind" not in data:
            raise TaskSpecError(f"task {name!r}: field 'kind' is required (one of {list(TASK_KINDS)})")
        return cls(**copy.deepcopy(data))

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dataclasses.asdict(self))

    @property
    def is_classification(self) -> bool:
        return self.kind == "semantic_segmentation"

    def label_names(self) -> list[str]:
        """Class names by id: `id2label`, else transformers' default `LABEL_<id>` (segmentation tasks only)."""
        if not self.is_classification:
            raise ValueError(f"a {self.kind} task has no classes")
        names = self.id2label or {}
        return [str(names.get(k, names.get(str(k), f"LABEL_{k}"))) for k in range(int(self.num_outputs))]

    def resolved(self, name: str, num_hidden_layers: int) -> TaskSpec:
        """Validate this spec and return a copy with every default filled in."""
        spec = copy.deepcopy(self)

        def fail(field: str, message: str) -> TaskSpecError:
            return TaskSpecError(f"task {name!r}: field {field!r} {message}")

        if not isinstance(name, str) or not name.isidentifier():
            raise TaskSpecError(f"task name {name!r} must be a non-empty identifier (letters, digits, underscores)")
        if spec.kind not in TASK_KINDS:
            raise fail("kind", f"must be one of {list(TASK_KINDS)}, got {spec.kind!r}")
        defaults = _KIND_DEFAULTS[spec.kind]

        fixed = {"depth": 1, "disparity": 1, "surface_normals": 3}.get(spec.kind)
        if spec.num_outputs is None:
            if fixed is None:
                raise fail("num_outputs", f"is required for kind {spec.kind!r} (number of classes or channels)")
            spec.num_outputs = fixed
        if isinstance(spec.num_outputs, bool) or not isinstance(spec.num_outputs, int) or spec.num_outputs < 1:
            raise fail("num_outputs", f"must be a positive integer, got {spec.num_outputs!r}")
        if fixed is not None and spec.num_outputs != fixed:
            raise fail("num_outputs", f"must be {fixed} for kind {spec.kind!r}, got {spec.num_outputs}")
        if spec.kind == "semantic_segmentation" and spec.num_outputs < 2:
            raise fail("num_outputs", f"must be >= 2 classes for semantic segmentation, got {spec.num_outputs}")

        if spec.kind == "semantic_segmentation":
            if spec.invalid_value is not None:
                raise fail("invalid_value", "is for regression kinds; use 'ignore_index' for semantic segmentation")
            if spec.ignore_index is None:
                spec.ignore_index = 255
            if isinstance(spec.ignore_index, bool) or not isinstance(spec.ignore_index, int):
                raise fail("ignore_index", f"must be an integer, got {spec.ignore_index!r}")
            if 0 <= spec.ignore_index < spec.num_outputs:
                raise fail(
                    "ignore_index",
                    f"({spec.ignore_index}) collides with a class id in [0, {spec.num_outputs}); use e.g. 255 or -1",
                )
            if spec.id2label is not None:
                spec.id2label = _resolved_id2label(spec.id2label, spec.num_outputs, fail)
        else:
            if spec.ignore_index is not None:
                raise fail("ignore_index", "is for semantic segmentation; use 'invalid_value' for regression kinds")
            if spec.id2label is not None:
                raise fail("id2label", "(class names) is only meaningful for semantic segmentation")
            if spec.invalid_value is None and spec.kind in ("depth", "disparity", "surface_normals"):
                spec.invalid_value = 0.0
            if spec.invalid_value is not None:
                if isinstance(spec.invalid_value, bool) or not isinstance(spec.invalid_value, (int, float)):
                    raise fail("invalid_value", f"must be a number or None, got {spec.invalid_value!r}")
                if spec.invalid_value != spec.invalid_value:  # NaN
                    raise fail("invalid_value", "must not be NaN; mark invalid pixels with a finite value such as 0")
                spec.invalid_value = float(spec.invalid_value)

        spec.loss = spec.loss or defaults["loss"]
        if spec.loss not in defaults["losses"]:
            raise fail("loss", f"must be one of {list(defaults['losses'])} for kind {spec.kind!r}, got {spec.loss!r}")
        spec.metric = spec.metric or defaults["metric"]
        if spec.metric not in defaults["metrics"]:
            raise fail(
                "metric", f"must be one of {list(defaults['metrics'])} for kind {spec.kind!r}, got {spec.metric!r}"
            )

        if spec.head not in HEAD_TYPES:
            raise fail("head", f"must be one of {list(HEAD_TYPES)}, got {spec.head!r}")
        allowed = HEAD_OPTIONS[spec.head]
        if not isinstance(spec.head_options, Mapping):
            raise fail("head_options", f"must be a mapping, got {type(spec.head_options).__name__}")
        unknown = sorted(set(spec.head_options) - set(allowed))
        if unknown:
            raise fail(
                "head_options", f"has unknown option(s) {unknown} for a {spec.head} head; known: {sorted(allowed)}"
            )
        spec.head_options = {**copy.deepcopy(allowed), **dict(spec.head_options)}

        if spec.layers is None:
            spec.layers = default_feature_layers(num_hidden_layers)
        if not isinstance(spec.layers, (list, tuple)) or not spec.layers:
            raise fail("layers", f"must be a non-empty list of block indices, got {spec.layers!r}")
        spec.layers = list(spec.layers)
        for layer in spec.layers:
            if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= num_hidden_layers:
                raise fail(
                    "layers",
                    f"entries must be block indices in [1, {num_hidden_layers}] (1-based), got {spec.layers!r}",
                )
        if spec.head == "depth_anything" and spec.kind not in ("depth", "disparity"):
            raise fail("head", f"a depth_anything head predicts depth or disparity, not {spec.kind!r}")
        if spec.head in ("dpt", "depth_anything"):
            options = spec.head_options
            if len(spec.layers) != len(options["reassemble_factors"]):
                raise fail(
                    "layers",
                    f"a DPT head needs one layer per reassemble stage ({len(options['reassemble_factors'])}),"
                    f" got {len(spec.layers)}",
                )
            if options["neck_hidden_sizes"] is not None and len(options["neck_hidden_sizes"]) != len(spec.layers):
                raise fail("head_options", "'neck_hidden_sizes' must have one entry per feature layer")
            if spec.head == "depth_anything":
                if options["depth_estimation_type"] not in ("relative", "metric"):
                    raise fail("head_options", "'depth_estimation_type' must be relative|metric")
                if options["max_depth"] is None:
                    raise fail("head_options", "'max_depth' must be a number (1 for relative models)")
            elif options["add_projection"] and options["fusion_hidden_size"] != 256:
                raise fail(  # transformers' DPTDepthEstimationHead builds its projection as Conv2d(256, 256)
                    "head_options", "'add_projection' needs fusion_hidden_size 256 (transformers' fixed projection)"
                )
            elif options["readout_type"] not in ("ignore", "add", "project"):
                raise fail(
                    "head_options", f"'readout_type' must be ignore|add|project, got {options['readout_type']!r}"
                )
        return spec


def _resolved_id2label(id2label: Any, num_classes: int, fail) -> dict[int, str]:
    """`id2label` with integer keys 0..K-1 (JSON stores them as strings) and non-empty string names."""
    if not isinstance(id2label, Mapping):
        raise fail("id2label", f"must be a mapping of class id -> name, got {type(id2label).__name__}")
    resolved = {}
    for key, value in id2label.items():
        try:
            index = int(key)
        except (TypeError, ValueError):
            raise fail("id2label", f"keys must be class ids (integers), got {key!r}") from None
        if not isinstance(value, str) or not value.strip():
            raise fail("id2label", f"names must be non-empty strings, got {value!r} for class {index}")
        resolved[index] = value
    if sorted(resolved) != list(range(num_classes)):
        raise fail(
            "id2label", f"has {len(resolved)} names for {num_classes} classes (ids 0..{num_classes - 1} needed)"
        )
    return dict(sorted(resolved.items()))


class SimoConfig(PreTrainedConfig):
    r"""Configuration of a [`SimoModel`]: a DINOv2-family encoder shared by several dense-prediction heads.

    Args:
        backbone_config (`Dinov2Config`, `Dinov2WithRegistersConfig`, `DINOv3ViTConfig` or `dict`, *optional*):
            The encoder configuration; its `model_type` picks the encoder family (`hf_simo.encoder_families`).
            Defaults to DINOv2-base.
        tasks (`dict[str, TaskSpec | dict]`, *optional*):
            Task name -> task spec. Stored fully resolved (every default filled in) in `config.json`.
        base_model_name_or_path (`str`, *optional*):
            The pre-trained encoder θ_0 the tasks were fine-tuned from (a Hub id or a folder); merging uses it.
        base_model_revision (`str`, *optional*):
            The commit of `base_model_name_or_path`, when known.
        merge (`dict`, *optional*):
            How this model's encoder was merged (method, hyper-parameters, sources with resolved commits).
        sources (`dict`, *optional*):
            Task -> where an imported task came from (a transformers checkpoint: name, revision, resolved commit,
            importer format, architectures), recorded by `SimoModel.from_pretrained(repo, task=...)`.
        realignment (`dict`, *optional*):
            How the merged model was re-aligned (mode, rank, steps, samples, trainable parameters).
        block_adapter (`str`, *optional*):
            Adapters after each encoder block (representation re-alignment): `"linear"` (block(x) + W·x, where W is a
            folded PEFT LoRA) or `"relu"` (the authors' o − up(ReLU(down(o))) variant). `None`: a plain encoder.
        block_adapter_rank (`int`, *optional*):
            Bottleneck size of the `"relu"` block adapter.
        pad_to_patch_multiple (`bool`, *optional*, defaults to `True`):
            Pad inputs whose size is not a multiple of the patch size (and crop the predictions back), instead of
            letting the patch embedding drop the remainder.

    Example:

    ```python
    >>> from hf_simo import SimoConfig, TaskSpec
    >>> config = SimoConfig(tasks={"segmentation": TaskSpec("semantic_segmentation", num_outputs=13), "depth": {"kind": "depth"}})
    ```
    """

    model_type = "simo"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="dinov2")}

    backbone_config: dict | PreTrainedConfig | None = None
    tasks: dict | None = None
    base_model_name_or_path: str | None = None
    base_model_revision: str | None = None
    merge: dict | None = None
    realignment: dict | None = None
    sources: dict | None = None
    block_adapter: str | None = None
    block_adapter_rank: int | None = None
    pad_to_patch_multiple: bool = True
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        # config.json is written with sorted keys; the task order travels separately (see `to_dict`)
        task_order = kwargs.pop("task_order", None)
        super().__post_init__(**kwargs)
        if not is_encoder_config(self.backbone_config):
            got = getattr(self.backbone_config, "model_type", type(self.backbone_config).__name__)
            raise ValueError(
                "SimoConfig.backbone_config must be a Dinov2Config, Dinov2WithRegistersConfig or DINOv3ViTConfig "
                f"(model_type {', '.join(repr(t) for t in ENCODER_FAMILIES)}), got {got!r}. hf_simo merges "
                f"encoders of these families: {supported_encoders()}."
            )
        if self.block_adapter not in (None, "linear", "relu"):
            raise ValueError(f"block_adapter must be None, 'linear' or 'relu', got {self.block_adapter!r}")
        if self.block_adapter == "relu":
            rank, hidden = self.block_adapter_rank, self.backbone_config.hidden_size
            if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= hidden:
                raise ValueError(f"block_adapter_rank must be an integer in [1, hidden_size={hidden}], got {rank!r}")
        tasks = self.tasks or {}
        if not isinstance(tasks, Mapping):
            raise TaskSpecError(f"tasks must be a mapping of task name -> task spec, got {type(tasks).__name__}")
        if task_order is not None and sorted(task_order) == sorted(tasks):
            tasks = {name: tasks[name] for name in task_order}
        num_layers = self.backbone_config.num_hidden_layers
        self.tasks = {
            name: TaskSpec.from_dict(name, spec).resolved(name, num_layers).to_dict() for name, spec in tasks.items()
        }
        self.sync_label_maps()

    def sync_label_maps(self) -> None:
        """Mirror the classes of the only segmentation task in transformers' `id2label`/`label2id`, which
        transformers' own pipelines and tools read; derived from `tasks` (call again after changing them)."""
        segmentation = [name for name, spec in self.tasks.items() if spec["kind"] == "semantic_segmentation"]
        if len(segmentation) == 1:
            names = self.get_task(segmentation[0]).label_names()
            self.id2label = dict(enumerate(names))
            self.label2id = {label: index for index, label in self.id2label.items()}

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["task_order"] = list(self.tasks)
        return data

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks)

    @property
    def task_specs(self) -> dict[str, TaskSpec]:
        """The tasks as `TaskSpec` objects (a fresh copy; edit `config.tasks` to change the config)."""
        return {name: TaskSpec.from_dict(name, spec) for name, spec in self.tasks.items()}

    def get_task(self, name: str) -> TaskSpec:
        if name not in self.tasks:
            raise KeyError(f"unknown task {name!r}; this model has tasks {self.task_names}")
        return TaskSpec.from_dict(name, self.tasks[name])

    def feature_layers(self) -> list[int]:
        """Union of the encoder features any head reads, sorted (`feature_key`s: +i normed, -i raw block i)."""
        return sorted(
            {
                feature_key(layer, spec["head_options"].get("layernorm", True))
                for spec in self.tasks.values()
                for layer in spec["layers"]
            }
        )

    def with_tasks(self, tasks: Mapping[str, TaskSpec | Mapping[str, Any]]) -> SimoConfig:
        """A copy of this config with another set of tasks (used to select, drop or add heads)."""
        data = self.to_dict()
        data["tasks"] = {name: TaskSpec.from_dict(name, spec).to_dict() for name, spec in tasks.items()}
        return SimoConfig.from_dict(data)


__all__ = ["SimoConfig", "TaskSpec", "TaskSpecError", "default_feature_layers", "feature_key"]
