"""Every error hf_simo raises for something the user gave it, under one base, `SimoError`.

Rule (PEFT's, transformers' too): an error caused by the user's input — the command line, a YAML file, files and
folders, checkpoints, datasets, the Hub — is a `SimoError` subclass that *also* refines the built-in exception the
code raised before (`ValueError`, `KeyError`, `FileNotFoundError`, `RuntimeError`, ...), so `except ValueError` in
callers and `pytest.raises(KeyError)` in tests keep matching. Misuse of the Python API by a programmer (a wrong
type) stays a plain built-in.

The command line turns a `SimoError` into one line on stderr (exit 1; `--debug` shows the traceback) and lets any
other exception through with its traceback, as a bug to report (`hf_simo.cli.runner`).

The classes are defined here once; the modules that raised them before re-export them, so
`from hf_simo.hub import CheckpointError`, `from hf_simo.data import DataFormatError`, ... keep working.
"""

from __future__ import annotations


class SimoError(Exception):
    """Base of every error caused by the user's input; the message names the problem and the fix."""


class OptionError(SimoError, ValueError):
    """An option is out of range, inconsistent with another one, or cannot apply; the message names it as `--name`."""


class MergeOptionError(OptionError):
    """An unknown merging method, an unknown option or an option outside its range."""


class TaskSpecError(SimoError, ValueError):
    """A task spec is invalid; the message names the task and the field."""


class CheckpointError(SimoError, ValueError):
    """A checkpoint cannot be used as asked; the message names the source and the fix."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint only has pickle weights and the user did not allow unpickling."""


class UnsupportedFormatError(CheckpointError):
    """A checkpoint of an architecture no importer handles (`hf_simo.interop.registry` lists them), or a DPT / Depth
    Anything model on a backbone hf_simo cannot merge (not DINOv2)."""


class UnsupportedExportError(SimoError, ValueError):
    """A task that has no transformers class to export to (head type, task kind, block adapters)."""


class NotFineTunedError(CheckpointError):
    """A task checkpoint's encoder is too far from the base to be a fine-tuned copy of it."""


class PublishError(SimoError, ValueError):
    """A folder cannot be pushed as asked; the message names what is wrong and how to fix it (one line)."""


class ImageInputError(SimoError, ValueError):
    """An input image cannot be used; the message names the image and the fix."""


class DataError(SimoError, ValueError):
    """A dataset cannot be used as asked: a split is missing or empty, a column is absent."""


class DataFormatError(DataError):
    """A dataset file exists but holds something else than the expected format; the message names the file."""


class UnknownTaskError(SimoError, KeyError, ValueError):
    """A task was asked for that the model, the dataset or the checkpoint does not have.

    A `KeyError` (a task name is a key of the task table) and a `ValueError` (what hf_simo raised before), so both
    kinds of `except` keep matching. Its message prints as given (a bare `KeyError` would quote it).
    """

    def __str__(self) -> str:
        return Exception.__str__(self)


class NotFoundError(SimoError, FileNotFoundError):
    """A file or folder the user named does not exist (a config file, a model folder without config.json)."""


class DatasetNotFoundError(NotFoundError):
    """A dataset folder or file is missing; the message names it and says what layout is expected."""


class OutputExistsError(SimoError, FileExistsError):
    """An output folder exists and replacing it was not asked for (`--overwrite_output_dir`)."""


class OutputBusyError(SimoError, RuntimeError):
    """Another process is writing the same output (it holds the output's lock)."""


class TrainingError(SimoError, RuntimeError):
    """Training cannot run as configured (or as launched); the message says what to change."""


class RunConflictError(SimoError, RuntimeError):
    """The output folder holds another run."""


__all__ = [
    "CheckpointError",
    "DataError",
    "DataFormatError",
    "DatasetNotFoundError",
    "ImageInputError",
    "MergeOptionError",
    "NotFineTunedError",
    "NotFoundError",
    "OptionError",
    "OutputBusyError",
    "OutputExistsError",
    "PublishError",
    "RunConflictError",
    "SimoError",
    "TaskSpecError",
    "TrainingError",
    "UnknownTaskError",
    "UnsafeCheckpointError",
    "UnsupportedExportError",
    "UnsupportedFormatError",
]
