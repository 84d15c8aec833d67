"""Finding, validating and reading the checkpoints a merge combines, one tensor at a time.

A merge has one base encoder theta_0 (a Dinov2 repo or folder, a `SimoModel` folder, or the base recorded in the
task checkpoints' configs) and T single-task `SimoModel` checkpoints. Hub ids go through `hf_simo.hub.resolve_repo`
(configs and safetensors only, revision/token/cache/offline honoured, commit recorded); local folders are read in
place. Everything is checked from headers before any weight is read: same encoder architecture, same tensor names
(after canonicalising transformers-4 Dinov2 names to transformers-5 names) and shapes, unique task names. Weights
are then read tensor by tensor with `safetensors.safe_open`, never a whole checkpoint at once.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.errors import HFValidationError
from safetensors import safe_open
from transformers import Dinov2Config, PreTrainedModel

from ..configuration_simo import SimoConfig
from ..errors import NotFineTunedError
from ..hub import PICKLE_PATTERNS, CheckpointError, UnsafeCheckpointError, resolve_repo, safetensors_files
from ..weights import canonical_key
from .arguments import DEFAULT_MAX_RELATIVE_DISTANCE


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
# transformers-4 Dinov2 names -> transformers-5 names (transformers' conversion_mapping.py, "Dinov2Model")
_SWIGLU_IN = ".mlp.weights_in."
_SWIGLU_OUT = (".mlp.gate_proj.", ".mlp.up_proj.")  # chunk(2, dim=0): gate first, as transformers converts it
# Encoder config fields that must agree for task vectors to make sense.
ARCHITECTURE_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "mlp_ratio",
    "use_swiglu_ffn",
    "patch_size",
    "num_channels",
    "qkv_bias",
    "hidden_act",
    "layer_norm_eps",
)
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


def parse_task_sources(values: Sequence[str]) -> dict[str, str]:
    """`["seg=org/repo@v1", "path/to/depth"]` -> {task: source} (the merge engine's `NAME=SOURCE` syntax); a source
    without `NAME=` is keyed by the task of its config (a single-task checkpoint)."""
    sources: dict[str, str] = {}
    for value in values:
        spec = parse_task_spec(value)
        source = str(spec.name_or_path)
        name = spec.task
        if name is None:
            config = SimoConfig.from_pretrained(resolve_repo(source).path)
            if len(config.tasks) != 1:
                raise CheckpointError(f"{source} has tasks {config.task_names}; name the one to use as NAME={source}")
            name = config.task_names[0]
        if name in sources:
            raise CheckpointError(
                f"task {name!r} is given twice ({sources[name]} and {source}); rename one as NAME=SOURCE"
            )
        sources[name] = source
    return sources


# ---------------------------------------------------------------------------------------------- readers


class _SafetensorsFile:
    """One safetensors file: validated by `safe_open`, then read with `pread` into freshly allocated tensors.

    `safe_open(...).get_tensor` maps the file and returns tensors backed by that mapping: every page read stays in
    the process' resident set until the file is closed, so reading T checkpoints through open handles would grow
    the RSS by T checkpoints. Reading the bytes into anonymous memory instead keeps the resident set at the tensors
    actually alive.
    """

    def __init__(self, path: Path, source: str):
        self.path = path
        try:
            with safe_open(str(path), framework="pt") as handle:  # validates the header and that data covers the file
                keys = list(handle.keys())
        except Exception as err:  # SafetensorError is not importable under a stable name
            raise CheckpointError(
                f"{source}: {path.name} is not a readable safetensors file (truncated or corrupted?): {err}"
            ) from err
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        self.data_start = 8 + length
        self.entries: dict[str, tuple[torch.dtype, tuple[int, ...], int, int]] = {}
        for key in keys:
            entry = header[key]
            if entry["dtype"] not in _SAFETENSORS_DTYPES:
                raise CheckpointError(f"{source}: tensor {key!r} has unsupported dtype {entry['dtype']}")
            begin, end = entry["data_offsets"]
            self.entries[key] = (_SAFETENSORS_DTYPES[entry["dtype"]], tuple(entry["shape"]), begin, end)
        self.fd: int | None = os.open(path, os.O_RDONLY)

    def read(self, key: str, source: str) -> torch.Tensor:
        dtype, shape, begin, end = self.entries[key]
        tensor = torch.empty(shape, dtype=dtype)
        size = end - begin
        if size:
            view = tensor.reshape(-1)
            buffer = memoryview(view.view(torch.uint8).numpy())
            done = 0
            while done < size:
                count = os.preadv(self.fd, [buffer[done:]], self.data_start + begin + done)
                if count <= 0:
                    raise CheckpointError(f"{source}: {self.path.name} ends inside tensor {key!r} (truncated file)")
                done += count
        return tensor

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class TensorReader:
    """Tensor-by-tensor access to the weights of one checkpoint.

    safetensors files are validated with `safe_open` (header, and data covering the file exactly) and read one
    tensor at a time into memory the process owns (see `_SafetensorsFile`). Pickle weights, read only when the user
    allowed it, and in-memory models are served from a state dict (pickles are loaded with
    `torch.load(weights_only=True, mmap=True)`).
    """

    def __init__(self, source: str, files: list[Path] | None = None, state_dict: Mapping[str, Any] | None = None):
        self.source = source
        self._files: list[_SafetensorsFile] = []
        self._where: dict[str, _SafetensorsFile] = {}
        self._info: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
        self._state_dict = state_dict
        self.owns_tensors = state_dict is None  # get() returns fresh buffers the caller may modify
        if state_dict is not None:
            for key, value in state_dict.items():
                if not isinstance(value, torch.Tensor):
                    raise CheckpointError(f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor")
                self._info[key] = (value.dtype, tuple(value.shape))
            return
        try:
            for path in files or []:
                handle = _SafetensorsFile(Path(path), source)
                self._files.append(handle)
                for key, (dtype, shape, _, _) in handle.entries.items():
                    if key in self._where:
                        raise CheckpointError(f"{source}: tensor {key!r} appears in two weight files")
                    self._where[key] = handle
                    self._info[key] = (dtype, shape)
        except BaseException:
            self.close()
            raise

    def keys(self) -> list[str]:
        return list(self._info)

    def info(self, key: str) -> tuple[torch.dtype, tuple[int, ...]]:
        return self._info[key]

    def get(self, key: str) -> torch.Tensor:
        if self._state_dict is not None:
            return self._state_dict[key].detach()
        return self._where[key].read(key, self.source)

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        self._files, self._where = [], {}


def _load_pickle_weights(folder: Path, source: str) -> dict[str, torch.Tensor]:
    files = sorted(p for pattern in PICKLE_PATTERNS for p in folder.glob(pattern))
    if not files:
        raise CheckpointError(f"{source} has no weights (neither safetensors nor pickle files)")
    state_dict: dict[str, torch.Tensor] = {}
    for path in files:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:
            raise CheckpointError(f"{source}: cannot load {path.name} ({err})") from err
        if isinstance(loaded, Mapping) and "state_dict" in loaded and isinstance(loaded["state_dict"], Mapping):
            loaded = loaded["state_dict"]
        if not isinstance(loaded, Mapping):
            raise CheckpointError(f"{source}: {path.name} does not hold a state dict")
        state_dict.update(loaded)
    return state_dict


# ---------------------------------------------------------------------------------------------- names


def canonical_encoder_keys(raw_key: str) -> list[tuple[str, int | None]]:
    """Canonical (transformers-5) Dinov2 names for one stored encoder tensor, with the chunk each one takes.

    Legacy attention names are renamed; the legacy SwiGLU `mlp.weights_in` (gate and up projections stacked on
    dim 0) maps to `mlp.gate_proj` (chunk 0) and `mlp.up_proj` (chunk 1), as transformers converts it.
    """
    key = f".{canonical_key(raw_key)}."  # the renames come from transformers' own conversion mapping
    if _SWIGLU_IN in key:
        return [(key.replace(_SWIGLU_IN, out)[1:-1], index) for index, out in enumerate(_SWIGLU_OUT)]
    return [(key[1:-1], None)]


# ---------------------------------------------------------------------------------------------- checkpoints


@dataclass
class Checkpoint:
    """A base or task checkpoint: where it came from, its configs, and its tensors under canonical names."""

    role: str  # "base" or "task"
    name_or_path: str
    revision: str | None
    commit: str | None
    path: Path | None
    backbone_config: Dinov2Config
    config: SimoConfig | Dinov2Config
    reader: TensorReader
    encoder: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    heads: list[str] = field(default_factory=list)
    task: str | None = None  # output task name (tasks only)
    source_task: str | None = None

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
        return record

    def close(self) -> None:
        self.reader.close()


def _read_config(path: Path, source: str) -> SimoConfig | Dinov2Config:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{source} has no config.json; expected a Dinov2 or SimoModel checkpoint folder")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{source}: config.json is not valid JSON ({err})") from err
    if model_type == "simo":
        return SimoConfig.from_pretrained(path)
    if model_type == "dinov2":
        return Dinov2Config.from_pretrained(path)
    raise CheckpointError(
        f"{source} is a {model_type!r} checkpoint; merging needs Dinov2 encoders (model_type 'dinov2') and SimoModel "
        "task checkpoints (model_type 'simo')"
    )


def _split_keys(
    reader: TensorReader, config: SimoConfig | Dinov2Config, source: str, role: str
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
        raise CheckpointError(f"{source} has no encoder weights (expected Dinov2 tensors such as 'embeddings.*')")
    return encoder, heads


def open_checkpoint(
    source: str | os.PathLike | PreTrainedModel,
    *,
    role: str,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    allow_pickle: bool = False,
) -> Checkpoint:
    """Resolve a source (Hub id, folder or model), read its config and weight headers; no weight is loaded."""
    if isinstance(source, PreTrainedModel):
        config = source.config
        name = getattr(config, "_name_or_path", "") or f"<in-memory {type(source).__name__}>"
        state_dict = dict(source.state_dict())
        reader = TensorReader(name, state_dict=state_dict)
        path, revision, commit = None, None, None
    else:
        try:
            resolved = resolve_repo(
                source,
                revision,
                token=token,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                allow_pickle=allow_pickle,
            )
        except HFValidationError as err:
            raise CheckpointError(
                f"{os.fspath(source)!r} is neither an existing folder nor a valid Hub repo id ('org/name'): {err}"
            ) from err
        name, path, revision, commit = resolved.name_or_path, resolved.path, resolved.revision, resolved.commit
        label = resolved.describe()
        config = _read_config(path, label)
        try:
            files = safetensors_files(path, source=label, allow_pickle=allow_pickle)
        except UnsafeCheckpointError:
            raise
        reader = (
            TensorReader(label, files=files)
            if files
            else TensorReader(label, state_dict=_load_pickle_weights(path, label))
        )
    backbone = config.backbone_config if config.model_type == "simo" else config
    if config.model_type not in ("simo", "dinov2"):
        raise CheckpointError(f"{name} is a {config.model_type!r} model; merging needs Dinov2/SimoModel checkpoints")
    if role == "task" and config.model_type != "simo":
        raise CheckpointError(
            f"{name} is a plain Dinov2 encoder without task heads; task checkpoints must be SimoModel checkpoints "
            "(model_type 'simo') holding the head fine-tuned with the encoder"
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
    checkpoint.encoder, checkpoint.heads = _split_keys(reader, config, checkpoint.describe(), role)
    return checkpoint


def open_task(source: TaskSource, **kwargs) -> Checkpoint:
    """A task checkpoint with its output task name and head selected."""
    checkpoint = open_checkpoint(source.name_or_path, role="task", revision=source.revision, **kwargs)
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
        raise CheckpointError(
            "no base encoder given and none of the task checkpoints records one (config.base_model_name_or_path); "
            "pass the pre-trained encoder they were fine-tuned from, e.g. --base facebook/dinov2-base"
        )
    distinct = set(recorded.values())
    if len(distinct) > 1:
        listing = "; ".join(f"{who}: {name}@{rev}" for who, (name, rev) in recorded.items())
        raise CheckpointError(f"the task checkpoints record different base encoders ({listing}); pass --base")
    return next(iter(distinct))


# ---------------------------------------------------------------------------------------------- validation


def check_unique_tasks(tasks: list[Checkpoint]) -> None:
    seen: dict[str, list[str]] = {}
    for checkpoint in tasks:
        seen.setdefault(checkpoint.task, []).append(checkpoint.name_or_path)
    duplicates = {name: where for name, where in seen.items() if len(where) > 1}
    if duplicates:
        name, where = next(iter(duplicates.items()))
        raise CheckpointError(
            f"task name {name!r} is used by {len(where)} checkpoints ({', '.join(where)}); give each a distinct name, "
            f"e.g. --task {name}_2={where[1]} (Python: TaskSource(..., task='{name}_2'))"
        )
    for checkpoint in tasks:
        if not checkpoint.task.isidentifier():
            raise CheckpointError(
                f"task name {checkpoint.task!r} must be an identifier (letters, digits, underscores)"
            )


def check_architecture(reference: Checkpoint, other: Checkpoint) -> None:
    """Same encoder architecture (config fields) and the same tensors with the same shapes."""
    for name in ARCHITECTURE_FIELDS:
        mine, theirs = getattr(reference.backbone_config, name, None), getattr(other.backbone_config, name, None)
        if mine != theirs:
            raise CheckpointError(
                f"{other.describe()}: encoder {name} is {theirs!r}, {reference.describe()} has {mine!r}; checkpoints "
                "must share the base encoder's architecture"
            )
    missing = sorted(set(reference.encoder) - set(other.encoder))
    extra = sorted(set(other.encoder) - set(reference.encoder))
    if missing:
        raise CheckpointError(
            f"{other.describe()} is missing encoder tensor(s) {missing[:5]}{' ...' if len(missing) > 5 else ''} that "
            f"{reference.describe()} has"
        )
    if extra:
        raise CheckpointError(
            f"{other.describe()} has encoder tensor(s) {extra[:5]}{' ...' if len(extra) > 5 else ''} that "
            f"{reference.describe()} does not have"
        )
    for key in reference.encoder:
        ref_dtype, ref_shape = reference.encoder_info(key)
        dtype, shape = other.encoder_info(key)
        if shape != ref_shape:
            raise CheckpointError(
                f"{other.describe()}: tensor {key!r} has shape {list(shape)}, "
                f"{reference.describe()} has {list(ref_shape)}"
            )
        if not dtype.is_floating_point:
            raise CheckpointError(f"{other.describe()}: encoder tensor {key!r} has non-float dtype {dtype}")


def check_finite(checkpoint: Checkpoint, key: str, tensor: torch.Tensor) -> None:
    if not torch.isfinite(tensor).all():
        bad = "NaN" if torch.isnan(tensor).any() else "inf"
        raise CheckpointError(f"{checkpoint.describe()}: tensor {key!r} contains {bad}; the checkpoint is corrupted")


def _squared(checkpoint: Checkpoint, key: str, tensor: torch.Tensor) -> float:
    """||x||^2 of a float32 tensor (BLAS dot, accumulated in float64 across tensors), which also detects NaN/inf."""
    flat = tensor.reshape(-1)
    value = float(torch.dot(flat, flat))
    if not math.isfinite(value):
        check_finite(checkpoint, key, tensor)  # names NaN or inf; passes only if the square merely overflowed
    return value


@dataclass
class DistanceStats:
    """Accumulates, over the encoder's weight tensors (ndim >= 2: projections, patch embedding, position embedding,
    CLS/mask tokens), ||theta_0||^2, ||theta_t||^2, ||tau_t||^2 and <theta_0, theta_t>; and ||tau_t||^2 over every
    tensor. Every tensor is checked for NaN/inf on the way.

    Norms, biases and layer scales are left out of the distance: they start from constants (1 or 0) in any
    initialisation, so they would make two unrelated encoders look close.
    """

    num_tasks: int
    base_sq: float = 0.0
    tau_sq: list[float] = field(default_factory=list)
    tau_sq_all: list[float] = field(default_factory=list)
    dot: list[float] = field(default_factory=list)
    finetuned_sq: list[float] = field(default_factory=list)

    def __post_init__(self):
        self.tau_sq = [0.0] * self.num_tasks
        self.tau_sq_all = [0.0] * self.num_tasks
        self.dot = [0.0] * self.num_tasks
        self.finetuned_sq = [0.0] * self.num_tasks

    def add_base(self, checkpoint: Checkpoint, key: str, base: torch.Tensor) -> None:
        squared = _squared(checkpoint, key, base)
        if base.dim() >= 2:
            self.base_sq += squared

    def add_task(
        self, index: int, checkpoint: Checkpoint, key: str, base: torch.Tensor, finetuned: torch.Tensor
    ) -> None:
        squared = _squared(checkpoint, key, finetuned)
        if finetuned.dim() >= 2:
            self.finetuned_sq[index] += squared
            self.dot[index] += float(torch.dot(base.reshape(-1), finetuned.reshape(-1)))

    def add_task_vector(self, index: int, tau: torch.Tensor) -> None:
        flat = tau.reshape(-1)
        squared = float(torch.dot(flat, flat))
        self.tau_sq_all[index] += squared
        if tau.dim() >= 2:
            self.tau_sq[index] += squared

    def relative_distance(self, index: int) -> float:
        return (self.tau_sq[index] ** 0.5) / max(self.base_sq**0.5, 1e-30)

    def cosine(self, index: int) -> float:
        return self.dot[index] / max((self.base_sq * self.finetuned_sq[index]) ** 0.5, 1e-30)


def check_fine_tuned(
    tasks: list[Checkpoint],
    stats: DistanceStats,
    max_relative_distance: float | None = DEFAULT_MAX_RELATIVE_DISTANCE,
) -> dict[str, dict[str, float]]:
    """Refuse task encoders that do not look fine-tuned from the base; return the distances for the record.

    Criterion: the relative distance ||theta_t - theta_0|| / ||theta_0|| over the encoder's weight tensors (see
    `DistanceStats`). Fine-tuning a large pre-trained ViT moves it by a few percent (typically 1e-3 to 5e-2); a small
    or briefly pre-trained encoder moves more (the embedded benchmark's: about 0.3-0.6, cosine to the base above
    0.8). An encoder trained from another initialisation, or fine-tuned from another base of the same architecture,
    sits near sqrt(2) ~ 1.4 (unrelated weights of similar norm) or beyond, where task vectors are meaningless. The
    default threshold, 1.0 (a task vector as large as the base itself), separates the two.
    `max_relative_distance=None` only warns.
    """
    report = {}
    for index, checkpoint in enumerate(tasks):
        distance, cosine = stats.relative_distance(index), stats.cosine(index)
        report[checkpoint.task] = {"relative_distance": distance, "cosine_to_base": cosine}
        if stats.tau_sq_all[index] == 0.0:
            warnings.warn(
                f"{checkpoint.describe()}: the encoder is identical to the base (zero task vector); only its head "
                "contributes to the merge",
                stacklevel=3,
            )
        elif max_relative_distance is not None and distance > max_relative_distance:
            raise NotFineTunedError(
                f"{checkpoint.describe()} does not look fine-tuned from the base: "
                f"||theta_t - theta_0|| / ||theta_0|| = {distance:.3g} (cosine {cosine:.3g}) over the weight "
                f"matrices, above the {max_relative_distance} limit (fine-tuning gives ~1e-3..0.6; unrelated encoders ~1.4). "
                "Check --base, or "
                "pass max_relative_distance=None (CLI: --allow-distant) to merge anyway"
            )
        elif max_relative_distance is None and distance > DEFAULT_MAX_RELATIVE_DISTANCE:
            warnings.warn(
                f"{checkpoint.describe()}: relative distance to the base is {distance:.3g}; it may not be fine-tuned "
                "from this base",
                stacklevel=3,
            )
    return report


__all__ = [
    "ARCHITECTURE_FIELDS",
    "Checkpoint",
    "DEFAULT_MAX_RELATIVE_DISTANCE",
    "DistanceStats",
    "NotFineTunedError",
    "TaskSource",
    "TensorReader",
    "base_from_tasks",
    "canonical_encoder_keys",
    "check_architecture",
    "check_fine_tuned",
    "check_finite",
    "check_unique_tasks",
    "open_checkpoint",
    "open_task",
    "parse_task_sources",
    "parse_task_spec",
]
