"""Finding and opening the checkpoints a merge combines (I/O): source specs, Hub resolution, configs, weight headers.

A merge has one base encoder theta_0 (a Dinov2 / Dinov2WithRegisters / DINOv3ViT repo or folder, a `SimoModel` folder, or the base recorded in the
task checkpoints' configs) and T single-task `SimoModel` checkpoints. Hub ids go through `hf_simo.hub.resolve_repo`
(configs and safetensors only, revision/token/cache/offline from `HubOptions`, commit recorded); local folders are
read in place. Everything is checked from headers before any weight is read (`hf_simo.merging.checks`): same encoder
family and architecture, same tensor names (after canonicalising transformers-4 Dinov2 names to transformers-5 names) and
shapes, unique task names. Weights are then read tensor by tensor (`hf_simo.merging.io.reader`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.errors import HFValidationError
from transformers import PreTrainedConfig, PreTrainedModel

from ...configuration_simo import SimoConfig
from ...encoder_families import ENCODER_FAMILIES, encoder_family
from ...errors import MergeOptionError
from ...hub import CheckpointError, HubOptions, UnsafeCheckpointError, resolve_repo, safetensors_files
from ...interop.plan import ImportPlan
from ...interop.registry import import_plan
from ...weights import canonical_names
from ..checks import check_architecture, check_unique_tasks
from .imported import imported_parts
from .reader import TensorReader, load_pickle_weights


_TASK_SPEC_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.+)$")


# ---------------------------------------------------------------------------------------------- source specs


@dataclass
class TaskSource:
    """One single-task checkpoint to merge.

    Args:
        name_or_path: Hub repo id (optionally `org/name@revision`), local folder, or an in-memory `SimoModel`.
        task: name of the task in the merged model (default: the checkpoint's own task name); renaming resolves
            duplicate names, e.g. two `depth` checkpoints from different datasets.
        revision: Hub revision (branch, tag or commit); alternative to `@revision`.
        source_task: which head to take from a checkpoint that has several (default: its only one).
    """

    name_or_path: str | os.PathLike | PreTrainedModel
    task: str | None = None
    revision: str | None = None
    source_task: str | None = None


def parse_task_spec(spec: str | os.PathLike | TaskSource | PreTrainedModel | Mapping[str, Any]) -> TaskSource:
    """`seg=org/repo@v1`, `org/repo`, `./folder`, a mapping of `TaskSource` fields, or a `TaskSource`/model."""
    if isinstance(spec, TaskSource):
        return spec
    if isinstance(spec, PreTrainedModel):
        return TaskSource(spec)
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"name_or_path", "task", "revision", "source_task"})
        if unknown or "name_or_path" not in spec:
            raise CheckpointError(
                f"task source {dict(spec)!r}: expected keys name_or_path (required), task, revision, source_task"
            )
        return TaskSource(**spec)
    text = os.fspath(spec)
    match = _TASK_SPEC_RE.match(text)
    if match and not os.path.exists(text):
        return TaskSource(match.group(2), task=match.group(1))
    return TaskSource(text)


def parse_task_sources(values: Sequence[str], hub: HubOptions | None = None) -> dict[str, str]:
    """`["seg=org/repo@v1", "path/to/depth"]` -> {task: source} (the merge engine's `NAME=SOURCE` syntax); a source
    without `NAME=` is keyed by the task of its config (a single-task checkpoint)."""
    sources: dict[str, str] = {}
    for value in values:
        spec = parse_task_spec(value)
        source = str(spec.name_or_path)
        name = spec.task
        if name is None:
            path = resolve_repo(source, hub=hub).path
            import_plan(path, None, source)  # a transformers task model: its task needs a NAME=
            config = SimoConfig.from_pretrained(path)
            if len(config.tasks) != 1:
                raise CheckpointError(f"{source} has tasks {config.task_names}; name the one to use as NAME={source}")
            name = config.task_names[0]
        if name in sources:
            raise CheckpointError(
                f"task {name!r} is given twice ({sources[name]} and {source}); rename one as NAME=SOURCE"
            )
        sources[name] = source
    return sources


# ---------------------------------------------------------------------------------------------- names


def canonical_encoder_keys(raw_key: str) -> list[tuple[str, int | None]]:
    """Canonical (transformers-5) Dinov2 names for one stored encoder tensor, with the chunk each one takes.

    Legacy attention names are renamed; the legacy SwiGLU `mlp.weights_in` (gate and up projections stacked on
    dim 0) maps to `mlp.gate_proj` (chunk 0) and `mlp.up_proj` (chunk 1), as transformers converts it.
    """
    return canonical_names(raw_key)  # the renames come from transformers' own conversion mapping


@dataclass
class Checkpoint:
    """A base or task checkpoint: where it came from, its configs, and its tensors under canonical names."""

    role: str  # "base" or "task"
    name_or_path: str
    revision: str | None
    commit: str | None
    path: Path | None
    backbone_config: PreTrainedConfig  # the encoder's: Dinov2Config, Dinov2WithRegistersConfig or DINOv3ViTConfig
    config: SimoConfig | PreTrainedConfig
    reader: TensorReader
    encoder: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    heads: list[str] = field(default_factory=list)
    task: str | None = None  # output task name (tasks only)
    source_task: str | None = None
    format: str | None = None  # the importer that read a transformers checkpoint (None: a SimoModel or Dinov2)

    def describe(self) -> str:
        where = self.name_or_path
        if self.commit:
            where = f"{where}@{self.commit[:12]}"
        elif self.revision:
            where = f"{where}@{self.revision}"
        return f"task {self.task!r} ({where})" if self.role == "task" else f"base ({where})"

    def encoder_info(self, key: str) -> tuple[torch.dtype, tuple[int, ...]]:
        raw, chunk = self.encoder[key]
        dtype, shape = self.reader.info(raw)
        if chunk is not None:
            shape = (shape[0] // 2, *shape[1:])
        return dtype, shape

    def encoder_tensor(self, key: str) -> torch.Tensor:
        """One encoder tensor in its stored dtype (the engine upcasts to float32)."""
        raw, chunk = self.encoder[key]
        tensor = self.reader.get(raw)
        if chunk is not None:
            tensor = tensor.chunk(2, dim=0)[chunk].contiguous()
        return tensor

    @property
    def task_spec(self) -> dict[str, Any]:
        return dict(self.config.tasks[self.source_task])

    def provenance(self) -> dict[str, Any]:
        record = {"name_or_path": self.name_or_path, "revision": self.revision, "commit": self.commit}
        if self.role == "task":
            record = {"task": self.task, **record}
            if self.source_task != self.task:
                record["source_task"] = self.source_task
        if self.format is not None:
            record["format"] = self.format
        return record

    def close(self) -> None:
        self.reader.close()


def read_config(path: Path, source: str) -> SimoConfig | PreTrainedConfig:
    """A SimoModel's config, or a bare encoder's (any family of `hf_simo.encoder_families`); else an error."""
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{source} has no config.json; expected an encoder or SimoModel checkpoint folder")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{source}: config.json is not valid JSON ({err})") from err
    if model_type == "simo":
        return SimoConfig.from_pretrained(path)
    if model_type in ENCODER_FAMILIES:
        return encoder_family(model_type).config_cls().from_pretrained(path)
    raise CheckpointError(
        f"{source} is a {model_type!r} checkpoint; merging needs encoders (model_type "
        f"{', '.join(repr(t) for t in ENCODER_FAMILIES)}) and SimoModel task checkpoints (model_type 'simo')"
    )


def split_keys(
    reader: TensorReader, config: SimoConfig | PreTrainedConfig, source: str, role: str
) -> tuple[dict[str, tuple[str, int | None]], list[str]]:
    keys = reader.keys()
    if config.model_type == "simo" or any(k.startswith("dinov2.") for k in keys):
        encoder_raw = [k for k in keys if k.startswith("dinov2.")]
        heads = [k for k in keys if k.startswith("heads.")]
        others = [k for k in keys if not k.startswith(("dinov2.", "heads."))]
        prefix = len("dinov2.")
        if others and config.model_type == "simo":
            raise CheckpointError(
                f"{source} has tensors outside the encoder and the heads: {others[:5]}"
                f"{' ...' if len(others) > 5 else ''}"
            )
    else:
        encoder_raw, heads, prefix = keys, [], 0
    if role == "base":
        heads = []
    encoder: dict[str, tuple[str, int | None]] = {}
    for raw in encoder_raw:
        for canonical, chunk in canonical_encoder_keys(raw[prefix:]):
            if canonical in encoder:
                raise CheckpointError(f"{source}: two stored tensors map to encoder tensor {canonical!r}")
            encoder[canonical] = (raw, chunk)
    if not encoder:
        raise CheckpointError(f"{source} has no encoder weights (expected encoder tensors such as 'embeddings.*')")
    return encoder, heads


def imported_checkpoint(plan: ImportPlan, reader: TensorReader, role: str, **where: Any) -> Checkpoint:
    """A transformers checkpoint (DPT-DINOv2, Depth Anything) as the engine sees a SimoModel one."""
    parts = imported_parts(plan, reader, role, where["label"])
    where.pop("label")
    return Checkpoint(role=role, format=plan.format, **parts, **where)


def open_checkpoint(
    source: str | os.PathLike | PreTrainedModel,
    *,
    role: str,
    revision: str | None = None,
    hub: HubOptions | None = None,
    task: str | None = None,
) -> Checkpoint:
    """Resolve a source (Hub id, folder or model), read its config and weight headers; no weight is loaded.

    transformers checkpoints (DPT-DINOv2, Depth Anything v1/v2, bare encoders of every family) are imported through
    `hf_simo.interop` (chosen from config.json); `task` names the task an imported task model becomes.
    """
    hub = hub or HubOptions()
    if isinstance(source, PreTrainedModel):
        config = source.config
        name = getattr(config, "_name_or_path", "") or f"<in-memory {type(source).__name__}>"
        state_dict = dict(source.state_dict())
        reader = TensorReader(name, state_dict=state_dict)
        path, revision, commit = None, None, None
    else:
        try:
            resolved = resolve_repo(source, revision, hub=hub)
        except HFValidationError as err:
            raise CheckpointError(
                f"{os.fspath(source)!r} is neither an existing folder nor a valid Hub repo id ('org/name'): {err}"
            ) from err
        name, path, revision, commit = resolved.name_or_path, resolved.path, resolved.revision, resolved.commit
        label = resolved.describe()
        # config.json only: refusals come before any weight is read; a base's task name is never used
        plan = import_plan(path, task if role == "task" else "base", label)
        if plan is not None and plan.format != "encoder":
            config = plan.source_config
        else:
            config = read_config(path, label)
        try:
            files = safetensors_files(path, source=label, allow_pickle=hub.allow_pickle)
        except UnsafeCheckpointError:
            raise
        reader = (
            TensorReader(label, files=files)
            if files
            else TensorReader(label, state_dict=load_pickle_weights(path, label))
        )
        if plan is not None and plan.format != "encoder":
            where = {"name_or_path": name, "revision": revision, "commit": commit, "path": path}
            try:
                return imported_checkpoint(plan, reader, role, label=label, **where)
            except BaseException:
                reader.close()
                raise
    backbone = config.backbone_config if config.model_type == "simo" else config
    if config.model_type != "simo" and config.model_type not in ENCODER_FAMILIES:
        raise CheckpointError(f"{name} is a {config.model_type!r} model; merging needs encoder/SimoModel checkpoints")
    if role == "task" and config.model_type != "simo":
        raise CheckpointError(
            f"{name} is a plain {config.model_type} encoder without task heads; task checkpoints must be SimoModel "
            "checkpoints (model_type 'simo') holding the head fine-tuned with the encoder"
        )
    checkpoint = Checkpoint(
        role=role,
        name_or_path=name,
        revision=revision,
        commit=commit,
        path=path,
        backbone_config=backbone,
        config=config,
        reader=reader,
    )
    checkpoint.encoder, checkpoint.heads = split_keys(reader, config, checkpoint.describe(), role)
    return checkpoint


def open_task(source: TaskSource, hub: HubOptions | None = None) -> Checkpoint:
    """A task checkpoint with its output task name and head selected."""
    checkpoint = open_checkpoint(source.name_or_path, role="task", revision=source.revision, hub=hub, task=source.task)
    tasks = list(checkpoint.config.tasks)
    where = checkpoint.describe().split(" ", 2)[-1]
    if source.source_task is not None:
        if source.source_task not in tasks:
            raise CheckpointError(f"{where} has no task {source.source_task!r}; its tasks are {tasks}")
        source_task = source.source_task
    elif len(tasks) == 1:
        source_task = tasks[0]
    else:
        raise CheckpointError(
            f"{where} has {len(tasks)} tasks {tasks}; merging takes single-task checkpoints. Pick one head with "
            "TaskSource(..., source_task=NAME)"
        )
    checkpoint.source_task = source_task
    checkpoint.task = source.task or source_task
    prefix = f"heads.{source_task}."
    checkpoint.heads = [k for k in checkpoint.heads if k.startswith(prefix)]
    if not checkpoint.heads:
        raise CheckpointError(f"{checkpoint.describe()} has no weights for its head 'heads.{source_task}.*'")
    return checkpoint


def base_from_tasks(tasks: Iterable[Checkpoint]) -> tuple[str, str | None]:
    """The base encoder recorded in the task checkpoints' configs; they must agree."""
    recorded = {}
    for checkpoint in tasks:
        name = checkpoint.config.base_model_name_or_path
        if name:
            recorded[checkpoint.describe()] = (name, checkpoint.config.base_model_revision)
    if not recorded:
        checkpoints = list(tasks)
        sizes = {"384": "small", "768": "base", "1024": "large", "1536": "giant"}
        hidden = str(checkpoints[0].backbone_config.hidden_size) if checkpoints else ""
        suggestion = f"facebook/dinov2-{sizes[hidden]}" if hidden in sizes else "facebook/dinov2-base"
        family = checkpoints[0].backbone_config.model_type if checkpoints else "dinov2"
        if family != "dinov2":
            suggestion = f"<the {family} encoder they were fine-tuned from>"
        imported = [c.describe() for c in checkpoints if c.format is not None]
        note = f" ({', '.join(imported)}: transformers checkpoints record no base)" if imported else ""
        raise CheckpointError(
            "no base encoder given and none of the task checkpoints records one (config.base_model_name_or_path)"
            f"{note}; pass the pre-trained encoder they were fine-tuned from, e.g. --base_model {suggestion}"
        )
    distinct = set(recorded.values())
    if len(distinct) > 1:
        listing = "; ".join(f"{who}: {name}@{rev}" for who, (name, rev) in recorded.items())
        raise CheckpointError(f"the task checkpoints record different base encoders ({listing}); pass --base_model")
    return next(iter(distinct))


# ---------------------------------------------------------------------------------------------- a merge's sources


@dataclass
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
    base: str | os.PathLike | Any | None, tasks: Sequence[Any], *, hub: HubOptions | None = None
) -> MergeSources:
    """Resolve every source (Hub download of configs + safetensors, or local folders; `ORG/NAME@REV` for a revision)
    and validate them from their headers: unique task names, same encoder architecture, tensor names and shapes as
    the base."""
    if isinstance(tasks, (str, os.PathLike)) or not isinstance(tasks, Sequence) or not tasks:
        raise CheckpointError("tasks must be a non-empty list of task checkpoints (e.g. ['seg=org/repo', ...])")
    opened: list[Checkpoint] = []
    try:
        for spec in tasks:
            opened.append(open_task(parse_task_spec(spec), hub=hub))
        check_unique_tasks(opened)
        revision = None
        if base is None:
            base, revision = base_from_tasks(opened)
        base_checkpoint = open_checkpoint(base, role="base", revision=revision, hub=hub)
        opened.append(base_checkpoint)
        for checkpoint in opened[:-1]:
            check_architecture(base_checkpoint, checkpoint)
        return MergeSources(base=base_checkpoint, tasks=opened[:-1])
    except BaseException:
        for checkpoint in opened:
            checkpoint.close()
        raise


def load_coefficients(coefficients: Any) -> Any:
    """Coefficients may be given as a JSON file path or an inline JSON string (CLI, YAML recipes)."""
    if isinstance(coefficients, (str, os.PathLike)):
        text = os.fspath(coefficients)
        try:
            return json.loads(Path(text).read_text() if os.path.isfile(text) else text)
        except json.JSONDecodeError as err:
            raise MergeOptionError(f"coefficients {text!r} is neither a JSON file nor inline JSON ({err})") from err
    return coefficients


__all__ = [
    "Checkpoint",
    "MergeSources",
    "TaskSource",
    "base_from_tasks",
    "canonical_encoder_keys",
    "imported_checkpoint",
    "load_coefficients",
    "open_checkpoint",
    "open_sources",
    "open_task",
    "parse_task_sources",
    "parse_task_spec",
    "read_config",
    "split_keys",
]
