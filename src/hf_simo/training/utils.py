"""Accelerator construction, CPU thread settings and experiment trackers shared by every recipe.

`make_accelerator` fixes the settings the training loop relies on: a seedable sampler (the shuffle order of an
epoch is a function of the seed and the epoch, which exact resume needs) and manual scheduler stepping. It also
makes CPU-only multi-process launches real: `accelerate launch --multi_gpu --num_processes 2` on a machine without
GPUs starts two processes that each see `WORLD_SIZE=2`, but unless the Accelerator is told to use the CPU each one
silently trains alone. Here the CPU is selected whenever no accelerator device exists, and a launch that still
ends up with fewer processes than `WORLD_SIZE` is an error instead of N independent runs writing the same folder.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker
from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, ProjectConfiguration


logger = logging.getLogger(__name__)

MIXED_PRECISION_CHOICES = ("no", "fp16", "bf16")


class JSONLTracker(GeneralTracker):
    """An Accelerate tracker that appends one JSON object per `log` call to `<logging_dir>/<run_name>/metrics.jsonl`.

    Needs nothing installed, is easy to read back (`read_jsonl`) and survives resumes (it appends).
    """

    name = "jsonl"
    requires_logging_directory = True
    main_process_only = True

    def __init__(self, run_name: str, logging_dir: str | os.PathLike):
        super().__init__()
        self.run_name = run_name
        self.directory = Path(logging_dir) / run_name
        self.path = self.directory / "metrics.jsonl"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def tracker(self) -> Path:
        return self.path

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "config.json").write_text(json.dumps(values, indent=1, sort_keys=True, default=str))

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        record = {"step": step, "time": time.time(), **values}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, default=_json_default) + "\n")

    def finish(self) -> None:
        pass


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return str(value)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records a `JSONLTracker` wrote."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def resolve_trackers(log_with: str | Sequence[str] | None, logging_dir: str | os.PathLike, run_name: str) -> list:
    """`"jsonl"`, `"tensorboard"`, `"all"`, other Accelerate tracker names, comma-separated, or `"none"`.

    `"jsonl"` is this package's file tracker. A tracker whose library is not installed is skipped with a warning
    (TensorBoard is optional), so a config that asks for it still runs.
    """
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, get_available_trackers

    if log_with is None:
        return []
    names = [n.strip() for n in (log_with.split(",") if isinstance(log_with, str) else log_with) if n.strip()]
    if not names or names == ["none"]:
        return []
    available = {str(t) for t in get_available_trackers()}
    trackers: list = []
    for name in names:
        if name == "none":
            continue
        if name == "jsonl":
            trackers.append(JSONLTracker(run_name, logging_dir))
        elif name == "all":
            trackers.append(JSONLTracker(run_name, logging_dir))
            trackers.extend(sorted(available))
        elif name in LOGGER_TYPE_TO_CLASS:
            if name in available:
                trackers.append(name)
            else:
                logger.warning("tracker %r is not installed; skipping it (pip install %s)", name, name)
        else:
            raise ValueError(
                f"unknown tracker {name!r}; use jsonl, none, all or one of {sorted(LOGGER_TYPE_TO_CLASS)}"
            )
    unique: list = []
    for tracker in trackers:
        if tracker not in unique and not (isinstance(tracker, str) and tracker in unique):
            unique.append(tracker)
    return unique


def has_accelerator_device() -> bool:
    """True when a GPU (CUDA/ROCm), XPU, NPU or MPS device is present."""
    if torch.cuda.is_available():
        return True
    for name in ("xpu", "npu", "mps"):
        backend = getattr(torch, name, None) or getattr(torch.backends, name, None)
        try:
            if backend is not None and backend.is_available():
                return True
        except Exception:  # a backend module without a usable is_available
            continue
    return False


def configure_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op threads: `num_threads`, else `OMP_NUM_THREADS`, else the cores divided among the
    processes on this machine (tiny models on few cores run much faster without oversubscription)."""
    if num_threads is None:
        env = os.environ.get("OMP_NUM_THREADS")
        if env:
            num_threads = int(env)
        else:
            local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
            num_threads = max(1, (os.cpu_count() or 1) // max(1, local))
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    torch.set_num_threads(num_threads)
    return num_threads


def make_accelerator(
    output_dir: str | os.PathLike,
    *,
    mixed_precision: str = "no",
    gradient_accumulation_steps: int = 1,
    seed: int = 0,
    log_with: str | Sequence[str] | None = "jsonl",
    run_name: str = "train",
    cpu: bool | None = None,
    find_unused_parameters: bool = False,
) -> Accelerator:
    """An `Accelerator` configured for `hf_simo.training.fit`.

    cpu: force the CPU; None selects it when no accelerator device exists (this is what makes
        `ACCELERATE_USE_CPU`-less multi-process CPU launches real).
    """
    if mixed_precision not in MIXED_PRECISION_CHOICES:
        raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION_CHOICES}, got {mixed_precision!r}")
    if gradient_accumulation_steps < 1:
        raise ValueError(f"gradient_accumulation_steps must be >= 1, got {gradient_accumulation_steps}")
    use_cpu = (not has_accelerator_device()) if cpu is None else cpu
    if use_cpu and mixed_precision == "fp16":
        raise ValueError("fp16 mixed precision needs a GPU; use bf16 on CPU, or 'no'")
    logging_dir = Path(output_dir) / "logs"
    accelerator = Accelerator(
        cpu=use_cpu,
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=gradient_accumulation_steps,
        log_with=resolve_trackers(log_with, logging_dir, run_name) or None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(logging_dir)),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=seed),
        step_scheduler_with_optimizer=False,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
    )
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and accelerator.num_processes != world_size:
        raise RuntimeError(
            f"launched as {world_size} processes but Accelerate runs {accelerator.num_processes}; on CPU launch with "
            "`ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N` (see hf_simo.accelerate_configs)"
        )
    return accelerator


def init_tracking(accelerator: Accelerator, project_name: str, config: dict[str, Any]) -> None:
    """`accelerator.init_trackers` with a config reduced to the scalar types every tracker accepts."""
    if not accelerator.log_with or tracking_started(accelerator):
        return
    flat = {
        k: (v if isinstance(v, (bool, int, float, str)) or v is None else json.dumps(v, default=str))
        for k, v in config.items()
    }
    accelerator.init_trackers(project_name, config=flat)
    accelerator._hf_simo_tracking = True


def tracking_started(accelerator: Accelerator) -> bool:
    return bool(getattr(accelerator, "_hf_simo_tracking", False))


def finish_tracking(accelerator: Accelerator) -> None:
    """Close the trackers (without destroying the process group, unlike `end_training`)."""
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.trackers = []
    accelerator._hf_simo_tracking = False


__all__ = [
    "JSONLTracker",
    "configure_threads",
    "finish_tracking",
    "has_accelerator_device",
    "init_tracking",
    "make_accelerator",
    "read_jsonl",
    "resolve_trackers",
]
