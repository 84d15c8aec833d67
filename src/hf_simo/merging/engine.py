"""Orchestration: open and validate the sources, run the streaming passes, write the merged `SimoModel`.

Only the encoder is merged; each task keeps its own head, copied unchanged. The encoder is streamed key by key:
for each tensor the base and each task's tensor are read (files validated by safetensors `safe_open`, bytes read
into process-owned buffers, see `sources.TensorReader`), upcast to float32, turned into task vectors and combined by
`methods.merge_task_vectors`, one task at a time, and the result is written at once (`writer`). Nothing ever holds
a whole checkpoint, or more than one tensor per task, so peak memory is a few tensors whatever the number of tasks.

Methods whose statistics span the whole encoder take extra read-only passes first:

- a global magnitude trim (TIES, magnitude pruning, and consensus/LiNeS on a TIES base) finds each task's exact
  threshold with two radix-select passes (`select.StreamingKthValue`);
- a global sign election (TIES) counts the elected signs in one more pass, for the majority sign that entries with
  a zero sum receive;
- LiNeS with an automatic alpha on a TIES base (or with per-layer coefficients) measures ||sum tau_t|| and
  ||tau_MTL|| in one more pass.

The first pass also checks every tensor for NaN/inf and measures each task's distance to the base (see
`sources.check_fine_tuned`); the last one refuses a merged tensor that is not finite and a merged encoder farther
than `MAX_RELATIVE_UPDATE`·‖θ_0‖ from θ_0 (an α that overflows, not a model). Output is written with
`hf_simo.atomic.atomic_folder`: into a temporary folder beside the output, under the output's lock, swapped in at the
very end; an error or a kill never leaves a partial output folder nor loses the previous one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers.initialization import no_init_weights

from ..atomic import atomic_folder, check_can_write
from ..cards import write_model_card
from ..configuration_simo import SimoConfig
from ..crashpoints import pause_point
from ..hub import CheckpointError
from ..image_processing_simo import make_image_processor
from ..modeling_simo import SimoModel
from ..publishing import push_folder_to_hub
from .methods import (
    MergeOptionError,
    apply_task_vector,
    elect_sign,
    final_scale,
    layer_group,
    layer_group_names,
    lines_auto_alpha,
    merge_task_vectors,
    resolve_coefficients,
    resolve_method,
    sign_count,
    squared_norm,
    task_arithmetic,
    trim,
    trim_scope,
    uses_sign_election,
    validate_alpha,
)
from .select import StreamingKthValue, kth_rank
from .sources import (
    DEFAULT_MAX_RELATIVE_DISTANCE,
    Checkpoint,
    DistanceStats,
    TaskSource,
    base_from_tasks,
    check_architecture,
    check_fine_tuned,
    check_finite,
    check_unique_tasks,
    open_checkpoint,
    open_task,
    parse_task_spec,
)
from .writer import DEFAULT_MAX_SHARD_SIZE, ShardedSafetensorsWriter


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Fine-tuning moves an encoder well under ‖θ_0‖ (the provenance check refuses task vectors above 1.0·‖θ_0‖), so a merge
# landing 10·‖θ_0‖ from θ_0 (eight such task vectors, all aligned, at α = 1 land at 8) comes from an overflowing α.
MAX_RELATIVE_UPDATE = 10.0
_DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "half": "float16", "float": "float32"}
PREPROCESSOR_NAME = "preprocessor_config.json"


# ---------------------------------------------------------------------------------------------- sources


@dataclasses.dataclass
class MergeSources:
    """The opened, validated base and task checkpoints of a merge (close them when done)."""

    base: Checkpoint
    tasks: list[Checkpoint]

    def close(self) -> None:
        for checkpoint in [self.base, *self.tasks]:
            checkpoint.close()

    def __enter__(self) -> MergeSources:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_sources(
    base: str | os.PathLike | Any | None,
    tasks: Sequence[Any],
    *,
    base_revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    allow_pickle: bool = False,
) -> MergeSources:
    """Resolve every source (Hub download of configs + safetensors, or local folders) and validate them from their
    headers: unique task names, same encoder architecture, tensor names and shapes as the base."""
    if isinstance(tasks, (str, os.PathLike)) or not isinstance(tasks, Sequence) or not tasks:
        raise CheckpointError("tasks must be a non-empty list of task checkpoints (e.g. ['seg=org/repo', ...])")
    hub = {"token": token, "cache_dir": cache_dir, "local_files_only": local_files_only, "allow_pickle": allow_pickle}
    opened: list[Checkpoint] = []
    try:
        for spec in tasks:
            opened.append(open_task(parse_task_spec(spec), **hub))
        check_unique_tasks(opened)
        if base is None:
            base, recorded_revision = base_from_tasks(opened)
            base_revision = base_revision or recorded_revision
        base_checkpoint = open_checkpoint(base, role="base", revision=base_revision, **hub)
        opened.append(base_checkpoint)
        for checkpoint in opened[:-1]:
            check_architecture(base_checkpoint, checkpoint)
        return MergeSources(base=base_checkpoint, tasks=opened[:-1])
    except BaseException:
        for checkpoint in opened:
            checkpoint.close()
        raise


# ---------------------------------------------------------------------------------------------- streaming job


class _TaskVectorsAt(Sequence):
    """Task vectors of one encoder tensor, read from disk on each access (never all tasks at once)."""

    def __init__(self, job: _MergeJob, key: str, base: torch.Tensor, validate: bool):
        self.job, self.key, self.base, self.validate = job, key, base, validate
        self._checked: set[int] = set()

    def __len__(self) -> int:
        return len(self.job.tasks)

    def __getitem__(self, index: int) -> torch.Tensor:
        checkpoint = self.job.tasks[index]
        finetuned = checkpoint.encoder_tensor(self.key).to(torch.float32)
        first = self.validate and index not in self._checked
        if first:
            self.job.stats.add_task(index, checkpoint, self.key, self.base, finetuned)
        if checkpoint.reader.owns_tensors:  # a fresh buffer read from disk: subtract in place, one allocation less
            tau = finetuned.sub_(self.base)
        else:
            tau = finetuned - self.base
        if first:
            self.job.stats.add_task_vector(index, tau)
            self._checked.add(index)
        return tau


class _MergeJob:
    """One merge: resolved method and coefficients, global statistics, and the final streaming pass."""

    def __init__(
        self,
        sources: MergeSources,
        method: str,
        options: Mapping[str, Any] | None,
        alpha: float,
        coefficients: Any,
        max_relative_distance: float | None,
        progress: bool,
        allow_per_task: bool = False,
    ):
        self.base, self.tasks = sources.base, sources.tasks
        self.method, self.options = resolve_method(method, options)
        if not allow_per_task:
            _check_single_encoder(self.method)
        self.alpha = validate_alpha(alpha)
        self.num_layers = self.base.backbone_config.num_hidden_layers
        self.keys = sorted(self.base.encoder)
        self.groups = {key: layer_group(key, self.num_layers) for key in self.keys}
        self.coefficients = resolve_coefficients(coefficients, [t.task for t in self.tasks], self.num_layers + 2)
        self.max_relative_distance = max_relative_distance
        self.progress = progress
        self.stats = DistanceStats(len(self.tasks))
        self.distances: dict[str, dict[str, float]] | None = None
        self.thresholds: list[float | None] | None = None
        self.majority: float | None = None
        self.lines_alpha: float | None = self.options.get("lines_alpha") if self.method == "lines" else None
        self._validated = False
        self.numel = sum(_numel(self.base.encoder_info(key)[1]) for key in self.keys)
        self.relative_update: float | None = None
        self._update_sq = 0.0
        self._base_sq = 0.0

    # ------------------------------------------------------------------ passes

    def _weights(self, key: str) -> list[float] | None:
        if self.coefficients is None:
            return None
        group = self.groups[key]
        return [row[group] for row in self.coefficients]

    def _iterate(self, description: str) -> Iterator[tuple[str, _TaskVectorsAt]]:
        validate = not self._validated
        bar = tqdm(self.keys, desc=description, unit="tensor", disable=not self.progress, leave=False)
        for key in bar:
            base = self.base.encoder_tensor(key).to(torch.float32)
            if validate:
                self.stats.add_base(self.base, key, base)
            yield key, _TaskVectorsAt(self, key, base, validate)
        bar.close()
        if validate:
            self._validated = True
            self.distances = check_fine_tuned(self.tasks, self.stats, self.max_relative_distance)

    def passes(self) -> list[str]:
        """Names of the passes this merge reads the checkpoints in (the last one writes)."""
        names = []
        if trim_scope(self.method, self.options) == "global" and kth_rank(self.numel, self.options["density"]):
            names += ["threshold (radix 1/2)", "threshold (radix 2/2)"]
        if self._needs_global_majority():
            names.append("sign election")
        if self._needs_norms():
            names.append("LiNeS norms")
        return names + ["merge"]

    def _needs_global_majority(self) -> bool:
        return uses_sign_election(self.method, self.options) and trim_scope(self.method, self.options) == "global"

    def _needs_norms(self) -> bool:
        if self.method != "lines" or self.options["lines_alpha"] is not None:
            return False
        return self.options["base_method"] == "ties" or self.coefficients is not None

    def prepare(self) -> None:
        """Run the read-only passes: exact global thresholds, global majority sign, LiNeS norms."""
        passes = self.passes()
        total = len(passes)
        step = 0
        if trim_scope(self.method, self.options) == "global":
            rank = kth_rank(self.numel, self.options["density"])
            self.thresholds = [None] * len(self.tasks)
            if rank is not None:
                selector = StreamingKthValue([rank] * len(self.tasks), counts=[self.numel] * len(self.tasks))
                for _ in range(2):
                    step += 1
                    for _, vectors in self._iterate(f"pass {step}/{total}: {passes[step - 1]}"):
                        for t in range(len(vectors)):
                            selector.update(t, vectors[t], magnitudes=True)
                    selector.next_pass()
                self.thresholds = selector.values()
        if self._needs_global_majority():
            step += 1
            count = 0
            for _, vectors in self._iterate(f"pass {step}/{total}: {passes[step - 1]}"):
                trimmed = _Trimmed(vectors, self.thresholds)
                count += sign_count(elect_sign(trimmed, majority=0.0))
            self.majority = float(count > 0) - float(count < 0)
        if self._needs_norms():
            step += 1
            sum_sq = merged_sq = 0.0
            for key, vectors in self._iterate(f"pass {step}/{total}: {passes[step - 1]}"):
                sum_sq += squared_norm(task_arithmetic(vectors))
                merged_sq += squared_norm(self._merge_key(key, vectors))
            self.lines_alpha = lines_auto_alpha(sum_sq, merged_sq, len(self.tasks))
        elif self.method == "lines" and self.lines_alpha is None:
            self.lines_alpha = lines_auto_alpha(1.0, 1.0, len(self.tasks))  # TA base, unit weights: exactly 1/T
        self._final_description = f"pass {total}/{total}: merge"

    def _merge_key(self, key: str, vectors: Sequence[torch.Tensor]) -> torch.Tensor:
        return merge_task_vectors(
            self.method,
            self.options,
            vectors,
            self._weights(key),
            key=key,
            thresholds=self.thresholds,
            majority=self.majority,
        )

    def scale(self, key: str) -> float:
        return final_scale(self.method, self.options, self.alpha, self.groups[key], self.num_layers, self.lines_alpha)

    def encoder(self, return_task_vector: bool = False) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
        """The final pass: (key, theta_0 in float32, merged theta in float32) per encoder tensor, in key order;
        with `return_task_vector`, the unscaled tau_MTL instead of theta."""
        for key, vectors in self._iterate(getattr(self, "_final_description", "merge")):
            merged = self._merge_key(key, vectors)
            yield (
                key,
                vectors.base,
                merged if return_task_vector else apply_task_vector(vectors.base, merged, self.scale(key)),
            )

    # ------------------------------------------------------------------ result checks

    def check_merged(self, key: str, base: torch.Tensor, merged: torch.Tensor) -> None:
        """Refuse a merged tensor (in its output dtype) that is not finite; add it to ‖θ − θ_0‖."""
        if not merged.is_floating_point():
            return
        if not torch.isfinite(merged).all():
            kind = "NaN" if torch.isnan(merged).any() else "inf"
            raise MergeOptionError(
                f"the merged encoder tensor {key!r} contains {kind} in {str(merged.dtype).replace('torch.', '')} "
                f"(alpha={self.alpha:g}): the scaled task vector overflows; use a smaller alpha (typically 0.1 to 1.5)"
            )
        self._update_sq += float(torch.linalg.vector_norm(merged.float() - base)) ** 2
        self._base_sq += float(torch.linalg.vector_norm(base)) ** 2

    def check_update(self) -> None:
        """After the last `check_merged`: refuse a merged encoder farther than `MAX_RELATIVE_UPDATE`·‖θ_0‖ from θ_0."""
        ratio = math.sqrt(self._update_sq / self._base_sq) if self._base_sq > 0 else math.sqrt(self._update_sq)
        self.relative_update = ratio
        if not math.isfinite(ratio) or ratio > MAX_RELATIVE_UPDATE:
            raise MergeOptionError(
                f"the merged encoder is {ratio:.3g}·‖θ_0‖ away from the base θ_0 (alpha={self.alpha:g}), farther than "
                f"{MAX_RELATIVE_UPDATE:g}·‖θ_0‖: fine-tuning moves an encoder less than ‖θ_0‖, so alpha is far too "
                "large; use a smaller alpha (typically 0.1 to 1.5)"
            )

    # ------------------------------------------------------------------ record

    def record(self) -> dict[str, Any]:
        """What `config.merge` records: method, options, scaling, sources with commits, statistics."""
        from ..version import __version__

        statistics: dict[str, Any] = {"encoder_parameters": self.numel}
        if self.distances is not None:
            statistics["distance_to_base"] = self.distances
        if self.thresholds is not None:
            statistics["global_thresholds"] = {t.task: v for t, v in zip(self.tasks, self.thresholds)}
        if self.majority is not None:
            statistics["global_majority_sign"] = self.majority
        if self.relative_update is not None:
            statistics["relative_update"] = self.relative_update  # ‖θ − θ_0‖ / ‖θ_0‖ of the merged encoder
        record: dict[str, Any] = {
            "method": self.method,
            "options": dict(self.options),
            "alpha": self.alpha,
            "coefficients": self.coefficients,
            "coefficient_groups": layer_group_names(self.num_layers) if self.coefficients is not None else None,
            "base": self.base.provenance(),
            "sources": [t.provenance() for t in self.tasks],
            "statistics": statistics,
            "hf_simo_version": __version__,
        }
        if self.method == "lines":
            record["lines_alpha"] = self.lines_alpha
        return record


class _Trimmed(Sequence):
    def __init__(self, vectors: Sequence[torch.Tensor], thresholds: list[float | None]):
        self.vectors, self.thresholds = vectors, thresholds

    def __len__(self) -> int:
        return len(self.vectors)

    def __getitem__(self, index: int) -> torch.Tensor:
        return trim(self.vectors[index], self.thresholds[index])


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


# ---------------------------------------------------------------------------------------------- outputs


def resolve_dtype(dtype: str | torch.dtype | None, sources: MergeSources) -> torch.dtype:
    """Output dtype: 'auto' (None) keeps the task checkpoints' encoder dtype; else float32/float16/bfloat16."""
    if dtype is None or dtype == "auto":
        first = sources.tasks[0]
        return first.encoder_info(next(iter(sorted(first.encoder))))[0]
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise MergeOptionError(f"dtype must be one of {sorted(DTYPES)} or 'auto', got {dtype}")
        return dtype
    name = _DTYPE_ALIASES.get(str(dtype), str(dtype)).removeprefix("torch.")
    if name not in DTYPES:
        raise MergeOptionError(f"dtype must be one of {sorted(DTYPES)} or 'auto', got {dtype!r}")
    return DTYPES[name]


def _build_config(job: _MergeJob, dtype: torch.dtype) -> SimoConfig:
    first = job.tasks[0]
    for other in job.tasks[1:]:
        if other.config.pad_to_patch_multiple != first.config.pad_to_patch_multiple:
            warnings.warn(
                f"{other.describe()} sets pad_to_patch_multiple={other.config.pad_to_patch_multiple}, "
                f"{first.describe()} {first.config.pad_to_patch_multiple}; the merged model uses the latter",
                stacklevel=3,
            )
    config = SimoConfig(
        backbone_config=first.backbone_config.to_dict(),
        tasks={checkpoint.task: checkpoint.task_spec for checkpoint in job.tasks},
        base_model_name_or_path=job.base.name_or_path,
        base_model_revision=job.base.commit or job.base.revision,
        merge=job.record(),
        pad_to_patch_multiple=first.config.pad_to_patch_multiple,
        initializer_range=first.config.initializer_range,
    )
    config.architectures = ["SimoModel"]
    config.dtype = str(dtype).removeprefix("torch.")
    return config


def _head_plan(job: _MergeJob, dtype: torch.dtype, cast: bool) -> list[tuple[str, Checkpoint, str, torch.dtype]]:
    plan = []
    for checkpoint in job.tasks:
        prefix = f"heads.{checkpoint.source_task}."
        for raw in sorted(checkpoint.heads):
            stored = checkpoint.reader.info(raw)[0]
            out = dtype if cast and stored.is_floating_point else stored
            plan.append((f"heads.{checkpoint.task}.{raw[len(prefix) :]}", checkpoint, raw, out))
    return plan


def _check_against_model(config: SimoConfig, shapes: dict[str, tuple[int, ...]], job: _MergeJob) -> None:
    """The planned tensors must be exactly the state dict of a `SimoModel` with this config."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in SimoModel(config).state_dict().items()}
    for task in job.tasks:
        prefix = f"heads.{task.task}."
        missing = sorted(k for k in expected if k.startswith(prefix) and k not in shapes)
        extra = sorted(k for k in shapes if k.startswith(prefix) and k not in expected)
        wrong = sorted(k for k in shapes if k.startswith(prefix) and k in expected and expected[k] != shapes[k])
        if missing or extra or wrong:
            raise CheckpointError(
                f"{task.describe()}: the head weights do not match its task spec (missing {missing[:3]}, "
                f"unexpected {extra[:3]}, wrong shape {wrong[:3]})"
            )
    others = sorted(set(expected) ^ set(shapes))
    if others:
        raise CheckpointError(f"the merged encoder does not match the Dinov2 config: {others[:5]}")


def saved_names(config: SimoConfig, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, str]:
    """The names `SimoModel.save_pretrained` gives these state-dict tensors on disk.

    transformers 5 saves Dinov2 weights under their transformers-4 names (`attention.attention.query`, ...) by
    reverting its load-time conversion; merged folders follow the same convention so they look like any saved
    `SimoModel`. Tensors that transformers would concatenate on save (the SwiGLU gate/up pair) keep their
    in-memory names, which transformers loads as well.
    """
    names = {name: name for name in shapes}
    try:
        from transformers.core_model_loading import revert_weight_conversion
    except ImportError:  # older or newer transformers: in-memory names are always loadable
        return names
    with torch.device("meta"):
        model = SimoModel(config)
        renamed = {}
        for name, shape in shapes.items():
            try:
                result = list(revert_weight_conversion(model, {name: torch.empty(shape)}))
            except Exception:  # a many-to-one converter cannot revert one tensor alone
                result = [name]
            renamed[name] = result[0] if len(result) == 1 else name
    targets = list(renamed.values())
    for name, target in renamed.items():
        names[name] = target if targets.count(target) == 1 else name
    return names


def _run_to_sink(
    job: _MergeJob, dtype: torch.dtype, cast_heads: bool, sink, config: SimoConfig, rename: Mapping[str, str] | None
) -> None:
    job.prepare()
    for key, base, merged in job.encoder():
        name = f"dinov2.{key}"
        merged = merged.to(dtype)
        job.check_merged(key, base, merged)
        sink(rename[name] if rename else name, merged)
    job.check_update()
    for name, checkpoint, raw, out_dtype in _head_plan(job, dtype, cast_heads):
        tensor = checkpoint.reader.get(raw)
        if tensor.is_floating_point():
            check_finite(checkpoint, raw, tensor)
        sink(rename[name] if rename else name, tensor.to(out_dtype))
    # statistics gathered during the passes go into the config
    config.merge = job.record()


def _plan(job: _MergeJob, dtype: torch.dtype, cast_heads: bool) -> list[tuple[str, torch.dtype, tuple[int, ...]]]:
    """(name, dtype, shape) of every output tensor, in the order the merge produces them (in-memory names)."""
    plan = [(f"dinov2.{key}", dtype, job.base.encoder_info(key)[1]) for key in job.keys]
    for name, checkpoint, raw, out_dtype in _head_plan(job, dtype, cast_heads):
        plan.append((name, out_dtype, checkpoint.reader.info(raw)[1]))
    return plan


def _collect_options(options: Mapping[str, Any] | None, method_options: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(options or {})
    for name, value in method_options.items():
        if value is None:
            continue
        if name in merged and merged[name] != value:
            raise MergeOptionError(f"option {name!r} given twice ({merged[name]!r} and {value!r})")
        merged[name] = value
    return merged


def _check_single_encoder(method: str) -> None:
    if method == "tall_mask":
        raise MergeOptionError(
            "TALL masks give each task its own encoder (theta_0 + m_t * tau_MTL), which a SIMO model with one shared "
            "encoder cannot hold. Use method='consensus' (TALL masks + consensus: one encoder), or score TALL masks "
            "with hf_simo.merging.search(..., method='tall_mask')"
        )


def _load_coefficients(coefficients: Any) -> Any:
    """Coefficients may be given as a JSON file path or an inline JSON string (CLI, YAML recipes)."""
    if isinstance(coefficients, (str, os.PathLike)):
        text = os.fspath(coefficients)
        try:
            return json.loads(Path(text).read_text() if os.path.isfile(text) else text)
        except json.JSONDecodeError as err:
            raise MergeOptionError(f"coefficients {text!r} is neither a JSON file nor inline JSON ({err})") from err
    return coefficients


# ---------------------------------------------------------------------------------------------- public API


def merge(
    tasks: Sequence[str | os.PathLike | TaskSource | Any],
    base: str | os.PathLike | Any | None = None,
    method: str = "task_arithmetic",
    options: Mapping[str, Any] | None = None,
    *,
    alpha: float = 1.0,
    coefficients: Any = None,
    dtype: str | torch.dtype | None = "auto",
    base_revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    allow_pickle: bool = False,
    max_relative_distance: float | None = DEFAULT_MAX_RELATIVE_DISTANCE,
    progress: bool = True,
    **method_options: Any,
) -> SimoModel:
    """Merge single-task checkpoints into one multi-task `SimoModel`, in memory.

    Args:
        tasks: task checkpoints: Hub ids (`org/name`, `org/name@rev`), folders, `name=source` to rename a task, a
            `TaskSource`, or in-memory `SimoModel`s.
        base: the pre-trained encoder theta_0 (Hub id, folder, `Dinov2Model`/`SimoModel`); default: the base the
            task checkpoints record in `config.base_model_name_or_path`.
        method: task_arithmetic, ties, magnitude, dare, breadcrumbs, consensus or lines (see `methods.METHODS`;
            `tall_mask` gives one encoder per task, so it is only scored by `search`).
        options / **method_options: method options, e.g. `density=0.2, scope="global"` for TIES.
        alpha: scaling of the merged task vector (theta = theta_0 + alpha * tau_MTL).
        coefficients: per-task weights: a number, [T], [T, L+2] (embeddings, each block, final layernorm) or a
            mapping task -> number | [L+2]; learned (AdaMerging-style) coefficients plug in here.
        dtype: output dtype, 'auto' (the task checkpoints' dtype), float32, float16 or bfloat16.
        max_relative_distance: refuse task encoders farther than this from the base (None: warn only).
    """
    options = _collect_options(options, method_options)
    coefficients = _load_coefficients(coefficients)
    _check_single_encoder(resolve_method(method, options)[0])
    validate_alpha(alpha)
    with open_sources(
        base,
        tasks,
        base_revision=base_revision,
        token=token,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        allow_pickle=allow_pickle,
    ) as sources:
        job = _MergeJob(sources, method, options, alpha, coefficients, max_relative_distance, progress)
        out_dtype = resolve_dtype(dtype, sources)
        cast_heads = not (dtype is None or dtype == "auto")
        config = _build_config(job, out_dtype)
        plan = _plan(job, out_dtype, cast_heads)
        _check_against_model(config, {name: shape for name, _, shape in plan}, job)
        with no_init_weights():
            model = SimoModel(config)
        model.to(out_dtype)
        state = model.state_dict()

        def sink(name: str, tensor: torch.Tensor) -> None:
            target = state[name]
            if target.dtype != tensor.dtype:  # keep heads in their stored dtype (auto)
                state[name] = tensor.clone()
                _set_tensor(model, name, state[name])
            else:
                target.copy_(tensor)

        _run_to_sink(job, out_dtype, cast_heads, sink, config, None)
        model.config.merge = config.merge
    return model.eval()


def _set_tensor(model: torch.nn.Module, name: str, tensor: torch.Tensor) -> None:
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name)
    if attr in module._parameters:
        module._parameters[attr] = torch.nn.Parameter(tensor, requires_grad=module._parameters[attr].requires_grad)
    else:
        module._buffers[attr] = tensor


def merge_to_folder(
    output_dir: str | os.PathLike,
    tasks: Sequence[str | os.PathLike | TaskSource | Any],
    base: str | os.PathLike | Any | None = None,
    method: str = "task_arithmetic",
    options: Mapping[str, Any] | None = None,
    *,
    alpha: float = 1.0,
    coefficients: Any = None,
    dtype: str | torch.dtype | None = "auto",
    base_revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    allow_pickle: bool = False,
    max_relative_distance: float | None = DEFAULT_MAX_RELATIVE_DISTANCE,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    overwrite: bool = False,
    wait_for_lock: bool = False,
    push_to_hub: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    progress: bool = True,
    **method_options: Any,
) -> Path:
    """Merge and write a complete `SimoModel` folder (config.json, safetensors, preprocessor_config.json).

    Streams tensor by tensor (see the module docstring). The folder is written under a temporary name beside
    `output_dir`, holding the output's lock, and swapped in at the end (`hf_simo.atomic.atomic_folder`): on any error
    or a kill the previous output stays as it was, and the next run cleans what a killed one left. Another process
    writing the same output is an `OutputBusyError` unless `wait_for_lock`; an output that exists (or appeared while
    waiting) is a `FileExistsError` unless `overwrite`. `push_to_hub="org/name"` then uploads it with
    `HfApi.upload_folder`. Arguments as in `merge`, plus the `MergeArguments` fields.
    """
    options = _collect_options(options, method_options)
    coefficients = _load_coefficients(coefficients)
    _check_single_encoder(resolve_method(method, options)[0])
    validate_alpha(alpha)
    output = Path(output_dir)
    check_can_write(output, overwrite)
    with open_sources(
        base,
        tasks,
        base_revision=base_revision,
        token=token,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        allow_pickle=allow_pickle,
    ) as sources:
        job = _MergeJob(sources, method, options, alpha, coefficients, max_relative_distance, progress)
        out_dtype = resolve_dtype(dtype, sources)
        cast_heads = not (dtype is None or dtype == "auto")
        config = _build_config(job, out_dtype)
        plan = _plan(job, out_dtype, cast_heads)
        _check_against_model(config, {name: shape for name, _, shape in plan}, job)
        rename = saved_names(config, {name: shape for name, _, shape in plan})
        with atomic_folder(output, overwrite=overwrite, wait_for_lock=wait_for_lock) as temporary:
            writer = ShardedSafetensorsWriter(
                temporary, [(rename[name], dt, shape) for name, dt, shape in plan], max_shard_size=max_shard_size
            )

            def sink(name: str, tensor: torch.Tensor) -> None:
                writer.write(name, tensor)
                pause_point("merge:writing")

            try:
                _run_to_sink(job, out_dtype, cast_heads, sink, config, rename)
                writer.close()
            except BaseException:
                writer.abort()
                raise
            config.save_pretrained(temporary)
            _write_preprocessor(sources, temporary)
            write_model_card(temporary, config)
    if push_to_hub:
        push_folder_to_hub(output, push_to_hub, token=token, private=bool(private), commit_message=commit_message)
    return output


def _write_preprocessor(sources: MergeSources, folder: Path) -> None:
    """The image processor the heads were trained with (the first task's), else the default one."""
    found = []
    for checkpoint in sources.tasks:
        if checkpoint.path is not None and (checkpoint.path / PREPROCESSOR_NAME).is_file():
            found.append((checkpoint, json.loads((checkpoint.path / PREPROCESSOR_NAME).read_text())))
    if not found:
        make_image_processor().save_pretrained(folder)
        return
    first, reference = found[0]
    for other, data in found[1:]:
        if data != reference:
            warnings.warn(
                f"{other.describe()} has a different image processor than {first.describe()}; the merged model "
                "uses the latter",
                stacklevel=3,
            )
    shutil.copyfile(first.path / PREPROCESSOR_NAME, folder / PREPROCESSOR_NAME)


# ---------------------------------------------------------------------------------------------- arguments


@dataclasses.dataclass
class MergeArguments:
    """Every argument of `merge_to_folder`, flat, for `HfArgumentParser` and YAML recipes (1:1 with the function).

    `merge_to_folder(**dataclasses.asdict(args))` runs it; options a method does not take must stay None.
    """

    output_dir: str = dataclasses.field(metadata={"help": "Folder to write the merged SimoModel to."})
    tasks: list[str] = dataclasses.field(
        default_factory=list,
        metadata={"help": "Task checkpoints: 'org/repo', 'org/repo@rev', a folder, or 'name=source' to rename."},
    )
    base: str | None = dataclasses.field(
        default=None, metadata={"help": "Pre-trained encoder theta_0 (default: the base the checkpoints record)."}
    )
    base_revision: str | None = dataclasses.field(default=None, metadata={"help": "Hub revision of the base."})
    method: str = dataclasses.field(
        default="task_arithmetic",
        metadata={"help": "task_arithmetic, ties, magnitude, dare, breadcrumbs, consensus or lines."},
    )
    alpha: float = dataclasses.field(default=1.0, metadata={"help": "theta = theta_0 + alpha * tau_MTL."})
    density: float | None = dataclasses.field(default=None, metadata={"help": "Fraction of entries kept (0, 1]."})
    scope: str | None = dataclasses.field(default=None, metadata={"help": "Magnitude trim scope: global or tensor."})
    aggregate: str | None = dataclasses.field(default=None, metadata={"help": "Disjoint merge: mean or sum."})
    seed: int | None = dataclasses.field(default=None, metadata={"help": "DARE seed."})
    rescale: bool | None = dataclasses.field(default=None, metadata={"help": "DARE: rescale kept entries."})
    sign_election: bool | None = dataclasses.field(default=None, metadata={"help": "DARE: TIES sign election."})
    gamma: float | None = dataclasses.field(default=None, metadata={"help": "Breadcrumbs: largest fraction dropped."})
    tall_lambda: float | None = dataclasses.field(default=None, metadata={"help": "Consensus: TALL mask lambda."})
    min_agreement: int | None = dataclasses.field(default=None, metadata={"help": "Consensus: minimum masks."})
    base_method: str | None = dataclasses.field(
        default=None, metadata={"help": "Consensus/LiNeS base: task_arithmetic or ties."}
    )
    beta: float | None = dataclasses.field(default=None, metadata={"help": "LiNeS depth scaling beta."})
    lines_alpha: float | None = dataclasses.field(default=None, metadata={"help": "LiNeS alpha (default: auto)."})
    coefficients: str | None = dataclasses.field(
        default=None, metadata={"help": "Per-task/per-layer coefficients: JSON file or inline JSON."}
    )
    dtype: str = dataclasses.field(default="auto", metadata={"help": "auto, float32, float16 or bfloat16."})
    token: str | None = dataclasses.field(default=None, metadata={"help": "Hub token (default: HF_TOKEN / login)."})
    cache_dir: str | None = dataclasses.field(default=None, metadata={"help": "Hugging Face cache folder."})
    local_files_only: bool = dataclasses.field(default=False, metadata={"help": "Do not download (cache only)."})
    allow_pickle: bool = dataclasses.field(default=False, metadata={"help": "Allow .bin (pickle) checkpoints."})
    max_relative_distance: float | None = dataclasses.field(
        default=DEFAULT_MAX_RELATIVE_DISTANCE,
        metadata={"help": "Refuse tasks with ||tau_t|| / ||theta_0|| above this (None: warn only)."},
    )
    max_shard_size: str = dataclasses.field(default=DEFAULT_MAX_SHARD_SIZE, metadata={"help": "Shard size."})
    overwrite: bool = dataclasses.field(default=False, metadata={"help": "Replace an existing output folder."})
    wait_for_lock: bool = dataclasses.field(
        default=False, metadata={"help": "Wait for another process writing the same output instead of failing."}
    )
    push_to_hub: str | None = dataclasses.field(default=None, metadata={"help": "Upload to this Hub repo id."})
    private: bool | None = dataclasses.field(default=None, metadata={"help": "Create the Hub repo as private."})
    commit_message: str | None = dataclasses.field(default=None, metadata={"help": "Hub commit message."})
    progress: bool = dataclasses.field(default=True, metadata={"help": "Show progress bars."})

    def to_kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def merge_from_arguments(args: MergeArguments) -> Path:
    return merge_to_folder(**args.to_kwargs())


__all__ = [
    "DTYPES",
    "MergeArguments",
    "MergeSources",
    "merge",
    "merge_from_arguments",
    "merge_to_folder",
    "open_sources",
    "resolve_dtype",
]
