"""What a merge produces, planned before any weight is read: the output dtype, the merged `SimoConfig`, the head
tensors copied from each task, the (name, dtype, shape) of every output tensor (checked against a `SimoModel` of that
config on the meta device), and `stream_merge`, which runs a `MergeJob` into a sink (a folder writer or a model's
state dict) in that order. Computation only: the sinks do the I/O."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch

from ..configuration_simo import SimoConfig
from ..errors import CheckpointError, MergeOptionError
from ..modeling_simo import SimoModel
from .checks import check_finite
from .io.sources import Checkpoint, MergeSources
from .io.spill import TensorSpill
from .job import MergeJob


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "half": "float16", "float": "float32"}
Sink = Callable[[str, torch.Tensor], None]


@runtime_checkable
class PatchableSink(Protocol):
    """A sink that can read back a tensor it was given and take it again, patched: a global-trim merge then reads
    each input twice (`MergeJob.prepare(patchable=True)`)."""

    def __call__(self, name: str, tensor: torch.Tensor) -> None: ...

    def read(self, name: str) -> torch.Tensor: ...

    def rewrite(self, name: str, tensor: torch.Tensor) -> None: ...


def resolve_dtype(dtype: str | torch.dtype | None, sources: MergeSources) -> torch.dtype:
    """Output dtype: 'auto' (None) keeps the task checkpoints' encoder dtype; else float32/float16/bfloat16."""
    if dtype is None or dtype == "auto":
        first = sources.tasks[0]
        return first.encoder_info(next(iter(sorted(first.encoder))))[0]
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise MergeOptionError(f"dtype must be one of {sorted(DTYPES)} or 'auto', got {dtype}")
        return dtype
    name = DTYPE_ALIASES.get(str(dtype), str(dtype)).removeprefix("torch.")
    if name not in DTYPES:
        raise MergeOptionError(f"dtype must be one of {sorted(DTYPES)} or 'auto', got {dtype!r}")
    return DTYPES[name]


def build_config(job: MergeJob, dtype: torch.dtype) -> SimoConfig:
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


def head_plan(job: MergeJob, dtype: torch.dtype, cast: bool) -> list[tuple[str, Checkpoint, str, torch.dtype]]:
    plan = []
    for checkpoint in job.tasks:
        prefix = f"heads.{checkpoint.source_task}."
        for raw in sorted(checkpoint.heads):
            stored = checkpoint.reader.info(raw)[0]
            out = dtype if cast and stored.is_floating_point else stored
            plan.append((f"heads.{checkpoint.task}.{raw[len(prefix) :]}", checkpoint, raw, out))
    return plan


def check_against_model(config: SimoConfig, shapes: dict[str, tuple[int, ...]], job: MergeJob) -> SimoModel:
    """The planned tensors must be exactly the state dict of a `SimoModel` with this config; returns that model (on
    the meta device: the writer names the tensors from it)."""
    with torch.device("meta"):
        model = SimoModel(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
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
        raise CheckpointError(f"the merged encoder does not match its encoder config: {others[:5]}")
    return model


def stream_merge(job: MergeJob, dtype: torch.dtype, cast_heads: bool, sink: Sink, config: SimoConfig) -> None:
    """Run the job's passes and feed every output tensor to `sink(name, tensor)` (in-memory names, `tensor_plan`
    order); the statistics gathered on the way go into `config.merge`."""
    patchable = isinstance(sink, PatchableSink)
    job.prepare(patchable=patchable)
    with TensorSpill() as spill:
        deferred = job.deferred_keys  # filled during the merge pass
        for key, base, merged in job.encoder():
            merged = merged.to(dtype)
            if key in deferred:  # checked once patched; its base waits on disk, not in memory
                spill.put(key, base)
            else:
                job.check_merged(key, base, merged)
            sink(f"dinov2.{key}", merged)
        for key, index, values in job.patches():
            name = f"dinov2.{key}"
            merged = sink.read(name)
            merged.view(-1)[index] = values.to(dtype)
            job.check_merged(key, spill.take(key), merged)
            sink.rewrite(name, merged)
    job.check_update()
    for name, checkpoint, raw, out_dtype in head_plan(job, dtype, cast_heads):
        tensor = checkpoint.reader.get(raw)
        if tensor.is_floating_point():
            check_finite(checkpoint, raw, tensor)
        sink(name, tensor.to(out_dtype))
    config.merge = job.record()


def tensor_plan(job: MergeJob, dtype: torch.dtype, cast_heads: bool) -> list[tuple[str, torch.dtype, tuple[int, ...]]]:
    """(name, dtype, shape) of every output tensor, in the order the merge produces them (in-memory names)."""
    plan = [(f"dinov2.{key}", dtype, job.base.encoder_info(key)[1]) for key in job.keys]
    for name, checkpoint, raw, out_dtype in head_plan(job, dtype, cast_heads):
        plan.append((name, out_dtype, checkpoint.reader.info(raw)[1]))
    return plan


__all__ = [
    "DTYPES",
    "DTYPE_ALIASES",
    "PatchableSink",
    "Sink",
    "build_config",
    "check_against_model",
    "head_plan",
    "resolve_dtype",
    "stream_merge",
    "tensor_plan",
]
