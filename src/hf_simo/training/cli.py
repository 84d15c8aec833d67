"""Command-line entry points of the training recipes: parse dataclass arguments, run, report errors in one line."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..configuration_simo import TaskSpecError
from ..hub import CheckpointError
from .args import DataArguments, EncoderArguments, FinetuneArguments, MTLArguments, RunArguments, parse_args
from .data import UnknownTaskError
from .loop import TrainingError
from .run import RunConflictError


def user_errors() -> tuple[type[BaseException], ...]:
    from ..data import DataFormatError, DatasetNotFoundError
    from ..merging import MergeOptionError, NotFineTunedError
    from ..publishing import PublishError
    from ..realign.job import RealignArgumentError

    return (
        RealignArgumentError,
        MergeOptionError,
        NotFineTunedError,
        PublishError,
        CheckpointError,
        RunConflictError,
        UnknownTaskError,
        DatasetNotFoundError,
        DataFormatError,
        TrainingError,
        TaskSpecError,
    )


def run_recipe(function: Callable[..., Path], dataclass_types: Sequence[type], argv: Sequence[str] | None) -> Path:
    """Parse `argv` into `dataclass_types`, call `function` with them; known user errors exit with one line."""
    try:
        parsed = parse_args(dataclass_types, argv)
    except (ValueError, FileNotFoundError) as err:  # unknown YAML keys, bad values, missing config file
        raise SystemExit(f"error: {' '.join(str(err).split())}") from err
    try:
        return function(*parsed)
    except user_errors() as err:
        raise SystemExit(f"error: {' '.join(str(err).split())}") from err


def pretrain_main(argv: Sequence[str] | None = None) -> Path:
    from .pretrain import pretrain_encoder

    return run_recipe(pretrain_encoder, (EncoderArguments, DataArguments, RunArguments), argv)


def ship_encoder_main(argv: Sequence[str] | None = None) -> Path:
    from .export import ExportArguments, export_encoder

    return run_recipe(export_encoder, (ExportArguments,), argv)


def finetune_main(argv: Sequence[str] | None = None) -> Path:
    from .finetune import run_finetune

    return run_recipe(run_finetune, (FinetuneArguments, DataArguments, RunArguments), argv)


def mtl_main(argv: Sequence[str] | None = None) -> Path:
    from .finetune import run_mtl

    return run_recipe(run_mtl, (MTLArguments, DataArguments, RunArguments), argv)


__all__ = ["finetune_main", "mtl_main", "pretrain_main", "run_recipe", "ship_encoder_main", "user_errors"]
