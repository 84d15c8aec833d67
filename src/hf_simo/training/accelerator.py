"""The Accelerator of every training run, and the CPU thread settings.

`make_accelerator` fixes the settings the training loop relies on: a seedable sampler (the shuffle order of an
epoch is a function of the seed and the epoch, which exact resume needs) and manual scheduler stepping. It also
makes CPU-only multi-process launches real: `accelerate launch --multi_gpu --num_processes 2` on a machine without
GPUs starts two processes that each see `WORLD_SIZE=2`, but unless the Accelerator is told to use the CPU each one
silently trains alone. Here the CPU is selected whenever no accelerator device exists, and a launch that still
ends up with fewer processes than `WORLD_SIZE` is an error instead of N independent runs writing the same folder.

Launch settings win over defaults (`resolve_launch_setting`): ``--mixed_precision`` and
``--gradient_accumulation_steps`` default to None, which means what ``accelerate launch`` exported
(``ACCELERATE_MIXED_PRECISION``, ``ACCELERATE_GRADIENT_ACCUMULATION_STEPS``), else "no" / 1. Accelerate itself lets an
explicit ``mixed_precision`` argument beat the launch and the launch's accumulation beat an explicit argument; here
neither is dropped silently: a recipe option that contradicts the launch is an `OptionError` naming both. The
launcher exports ``ACCELERATE_MIXED_PRECISION=no`` when nothing was asked, so "no" (and accumulation 1) from the
launch cannot be told from its default and yields to the option.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, ProjectConfiguration

from ..errors import OptionError, TrainingError
from .tracking import resolve_trackers


MIXED_PRECISION_CHOICES = ("no", "fp16", "bf16")
LAUNCH_SETTINGS = {  # option -> (environment variable accelerate launch exports, default without a launch)
    "mixed_precision": ("ACCELERATE_MIXED_PRECISION", "no"),
    "gradient_accumulation_steps": ("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", 1),
}


def resolve_launch_setting(name: str, value: Any = None) -> Any:
    """The value of the run option `name`: the option if given, else the launch's, else the default; an option that
    contradicts the launch is an `OptionError` naming both."""
    variable, default = LAUNCH_SETTINGS[name]
    raw = os.environ.get(variable)
    launched = None
    if raw not in (None, ""):
        launched = raw.lower() if name == "mixed_precision" else _positive_int(raw, variable)
    if value is None:
        return default if launched is None else launched
    if launched is not None and launched != default and launched != value:
        raise OptionError(
            f"--{name} {value} contradicts the launch ({variable}={raw}, e.g. from `accelerate launch --{name} "
            f"{raw}`): drop --{name} to use the launch's, or launch with the value you want"
        )
    return value


def _positive_int(raw: str, variable: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise OptionError(f"{variable}={raw!r} must be a positive integer") from None
    if value < 1:
        raise OptionError(f"{variable}={raw!r} must be a positive integer")
    return value


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
        raise OptionError(f"num_threads must be >= 1, got {num_threads}")
    torch.set_num_threads(num_threads)
    return num_threads


def make_accelerator(
    output_dir: str | os.PathLike,
    *,
    mixed_precision: str | None = None,
    gradient_accumulation_steps: int | None = None,
    seed: int = 0,
    report_to: str | Sequence[str] | None = "jsonl",
    run_name: str = "train",
    cpu: bool | None = None,
    find_unused_parameters: bool = False,
) -> Accelerator:
    """An `Accelerator` configured for `hf_simo.training.fit`.

    mixed_precision / gradient_accumulation_steps: None = the launch's (`resolve_launch_setting`).
    cpu: force the CPU; None selects it when no accelerator device exists (this is what makes
        `ACCELERATE_USE_CPU`-less multi-process CPU launches real).
    """
    mixed_precision = resolve_launch_setting("mixed_precision", mixed_precision)
    gradient_accumulation_steps = resolve_launch_setting("gradient_accumulation_steps", gradient_accumulation_steps)
    if mixed_precision not in MIXED_PRECISION_CHOICES:
        raise OptionError(f"--mixed_precision must be one of {MIXED_PRECISION_CHOICES}, got {mixed_precision!r}")
    if isinstance(gradient_accumulation_steps, bool) or gradient_accumulation_steps < 1:
        raise OptionError(f"--gradient_accumulation_steps must be >= 1, got {gradient_accumulation_steps}")
    use_cpu = (not has_accelerator_device()) if cpu is None else cpu
    if use_cpu and mixed_precision == "fp16":
        raise OptionError("--mixed_precision fp16 needs a GPU; use bf16 on CPU, or 'no'")
    logging_dir = Path(output_dir) / "logs"
    accelerator = Accelerator(
        cpu=use_cpu,
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=gradient_accumulation_steps,
        log_with=resolve_trackers(report_to, logging_dir, run_name) or None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(logging_dir)),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=seed),
        step_scheduler_with_optimizer=False,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
    )
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and accelerator.num_processes != world_size:
        raise TrainingError(
            f"launched as {world_size} processes but Accelerate runs {accelerator.num_processes}; on CPU launch with "
            "`ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N` (see hf_simo.accelerate_configs)"
        )
    return accelerator


__all__ = [
    "LAUNCH_SETTINGS",
    "MIXED_PRECISION_CHOICES",
    "configure_threads",
    "has_accelerator_device",
    "make_accelerator",
    "resolve_launch_setting",
]
