"""The merge API: `merge` (in memory) and `merge_to_folder` (streamed to disk), and `merge_from_arguments` (the
command line's dataclasses). Both merges validate the request first (`MergeRequest`), then open and plan it once
(`open_merge`: sources, `MergeJob`, config, tensor plan, checked against a `SimoModel`), then stream the job into
their sink. Publishing is not a merge's job: ``hf-simo merge --push_to_hub`` pushes the folder afterwards through
`hf_simo.publishing.push_folder_to_hub`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers.initialization import no_init_weights

from ..atomic import check_can_write
from ..errors import OptionError
from ..hub import HubOptions
from ..modeling_simo import SimoModel
from .arguments import DEFAULT_MAX_RELATIVE_DISTANCE, MergeMethodArguments, MergeOutputArguments, SourceArguments
from .io.folder import write_merged_folder
from .io.sources import MergeSources, TaskSource, load_coefficients, open_sources
from .io.writer import DEFAULT_MAX_SHARD_SIZE
from .job import MergeJob, check_single_encoder, collect_options
from .merge_methods import resolve_method, validate_alpha
from .plan import build_config, check_against_model, resolve_dtype, stream_merge, tensor_plan
from .threads import torch_threads


@dataclass
class MergeRequest:
    """A validated merge: sources as given, method options collected, coefficients loaded, alpha checked."""

    tasks: Sequence[Any]
    base: Any
    method: str
    options: dict[str, Any]
    alpha: float
    coefficients: Any
    dtype: str | torch.dtype | None
    hub: HubOptions | None
    max_relative_distance: float | None

    @classmethod
    def build(
        cls,
        tasks: Sequence[Any],
        base: Any,
        method: str,
        options: Mapping[str, Any] | None,
        method_options: Mapping[str, Any],
        alpha: float,
        coefficients: Any,
        dtype: str | torch.dtype | None,
        hub: HubOptions | None,
        max_relative_distance: float | None,
    ) -> MergeRequest:
        options = collect_options(options, method_options)
        coefficients = load_coefficients(coefficients)
        check_single_encoder(resolve_method(method, options)[0])
        validate_alpha(alpha)
        return cls(tasks, base, method, options, alpha, coefficients, dtype, hub, max_relative_distance)


@dataclass
class PlannedMerge:
    """An opened merge: its sources, job, output dtype, merged config and tensor plan."""

    sources: MergeSources
    job: MergeJob
    dtype: torch.dtype
    cast_heads: bool
    config: Any
    plan: list[tuple[str, torch.dtype, tuple[int, ...]]]
    meta_model: SimoModel  # the planned model on the meta device (the plan was checked against it)


@contextlib.contextmanager
def open_merge(request: MergeRequest) -> Iterator[PlannedMerge]:
    """Open and validate the sources, build the job and the config, plan every output tensor and check the plan
    against a `SimoModel` of that config; the sources are closed on leaving the block."""
    with open_sources(request.base, request.tasks, hub=request.hub) as sources:
        job = MergeJob(
            sources,
            request.method,
            request.options,
            request.alpha,
            request.coefficients,
            request.max_relative_distance,
        )
        out_dtype = resolve_dtype(request.dtype, sources)
        cast_heads = not (request.dtype is None or request.dtype == "auto")
        config = build_config(job, out_dtype)
        plan = tensor_plan(job, out_dtype, cast_heads)
        meta_model = check_against_model(config, {name: shape for name, _, shape in plan}, job)
        yield PlannedMerge(sources, job, out_dtype, cast_heads, config, plan, meta_model)


def merge(
    tasks: Sequence[str | os.PathLike | TaskSource | Any],
    base: str | os.PathLike | Any | None = None,
    method: str = "task_arithmetic",
    options: Mapping[str, Any] | None = None,
    *,
    alpha: float = 1.0,
    coefficients: Any = None,
    dtype: str | torch.dtype | None = "auto",
    hub: HubOptions | None = None,
    max_relative_distance: float | None = DEFAULT_MAX_RELATIVE_DISTANCE,
    num_threads: int | None = None,
    **method_options: Any,
) -> SimoModel:
    """Merge single-task checkpoints into one multi-task `SimoModel`, in memory.

    Args:
        tasks: task checkpoints: Hub ids (`org/name`, `org/name@rev`), folders, `name=source` to rename a task, a
            `TaskSource`, or in-memory `SimoModel`s.
        base: the pre-trained encoder theta_0 (Hub id, `org/name@rev`, folder, `Dinov2Model`/`SimoModel`); default:
            the base the task checkpoints record in `config.base_model_name_or_path`.
        method: task_arithmetic, ties, magnitude, dare, breadcrumbs, consensus or lines (see
            `merge_methods.METHODS`; `tall_mask` gives one encoder per task, so it is only scored by `search`).
        options / **method_options: method options, e.g. `density=0.2, scope="global"` for TIES.
        alpha: scaling of the merged task vector (theta = theta_0 + alpha * tau_MTL).
        coefficients: per-task weights: a number, [T], [T, L+2] (embeddings, each block, final layernorm) or a
            mapping task -> number | [L+2] (or a JSON file / inline JSON of one); learned (AdaMerging-style)
            coefficients plug in here.
        dtype: output dtype, 'auto' (the task checkpoints' dtype), float32, float16 or bfloat16.
        hub: how Hub sources are read (token, cache, offline, pickle); default `HubOptions()`.
        max_relative_distance: refuse task encoders farther than this from the base (None: warn only).
        num_threads: torch threads for the merge (default: torch's, all cores unless OMP_NUM_THREADS is set); the
            result is the same for any thread count.
    """
    settings = (alpha, coefficients, dtype, hub, max_relative_distance)
    request = MergeRequest.build(tasks, base, method, options, method_options, *settings)
    with torch_threads(num_threads), open_merge(request) as planned:
        with no_init_weights():
            model = SimoModel(planned.config)
        model.to(planned.dtype)
        stream_merge(planned.job, planned.dtype, planned.cast_heads, ModelSink(model), planned.config)
        model.config.merge = planned.config.merge
    return model.eval()


class ModelSink:
    """The in-memory merge's sink: copies each tensor into the model's state dict (heads kept in their stored dtype
    under 'auto'); `read`/`rewrite` let a two-read merge patch a tensor in place."""

    def __init__(self, model: SimoModel):
        self.model, self.state = model, model.state_dict()

    def __call__(self, name: str, tensor: torch.Tensor) -> None:
        target = self.state[name]
        if target.dtype != tensor.dtype:  # keep heads in their stored dtype (auto)
            self.state[name] = tensor.clone()
            _set_tensor(self.model, name, self.state[name])
        else:
            target.copy_(tensor)

    def read(self, name: str) -> torch.Tensor:
        return self.state[name].detach()

    def rewrite(self, name: str, tensor: torch.Tensor) -> None:
        if tensor.data_ptr() != self.state[name].data_ptr():
            self.state[name].copy_(tensor)


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
    hub: HubOptions | None = None,
    max_relative_distance: float | None = DEFAULT_MAX_RELATIVE_DISTANCE,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    overwrite: bool = False,
    wait_for_lock: bool = False,
    num_threads: int | None = None,
    **method_options: Any,
) -> Path:
    """Merge and write a complete `SimoModel` folder (config.json, safetensors, preprocessor_config.json, README.md).

    Streams tensor by tensor (see `hf_simo.merging.job`). The folder is written under a temporary name beside
    `output_dir`, holding the output's lock, and swapped in at the end (`hf_simo.merging.io.folder`): on any error
    or a kill the previous output stays as it was, and the next run cleans what a killed one left. Another process
    writing the same output is an `OutputBusyError` unless `wait_for_lock`; an output that exists (or appeared while
    waiting) is a `FileExistsError` unless `overwrite`. Arguments as in `merge`. Nothing is pushed: publish the
    folder with `hf_simo.publishing.push_folder_to_hub` (``hf-simo merge --push_to_hub`` does). `num_threads`:
    torch threads for the merge (default: torch's, i.e. all cores unless OMP_NUM_THREADS is set); the written
    folder is the same for any thread count.
    """
    settings = (alpha, coefficients, dtype, hub, max_relative_distance)
    request = MergeRequest.build(tasks, base, method, options, method_options, *settings)
    output = Path(output_dir)
    check_can_write(output, overwrite)
    with (
        torch_threads(num_threads),
        open_merge(request) as planned,
        write_merged_folder(
            output,
            planned.sources,
            planned.config,
            planned.plan,
            max_shard_size=max_shard_size,
            overwrite=overwrite,
            wait_for_lock=wait_for_lock,
            model=planned.meta_model,
        ) as sink,
    ):
        stream_merge(planned.job, planned.dtype, planned.cast_heads, sink, planned.config)
    return output


def merge_from_arguments(
    sources: SourceArguments,
    method: MergeMethodArguments,
    output: MergeOutputArguments,
    hub: HubOptions | None = None,
) -> Path:
    """`merge_to_folder` from the merge verb's dataclasses (``hf-simo merge``, ``recipes/merge.py``); pushing is the
    verb's job (`output.push_to_hub`)."""
    if not sources.task_checkpoints:
        raise OptionError("--task_checkpoints is required: the single-task checkpoints to merge")
    if not output.output_dir:
        raise OptionError("--output_dir is required: the folder to write the merged model to")
    return merge_to_folder(
        output.output_dir,
        list(sources.task_checkpoints),
        sources.base_model,
        method.merge_method,
        method.method_options(),
        alpha=1.0 if method.alpha is None else method.alpha,
        coefficients=method.coefficients,
        dtype=output.dtype,
        hub=hub,
        max_relative_distance=sources.distance_limit,
        max_shard_size=output.max_shard_size,
        overwrite=output.overwrite_output_dir,
        wait_for_lock=output.wait_for_lock,
        num_threads=output.num_threads,
    )


__all__ = ["MergeRequest", "PlannedMerge", "merge", "merge_from_arguments", "merge_to_folder", "open_merge"]
