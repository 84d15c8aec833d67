"""Errors: one `SimoError` base refined by the built-ins hf_simo raised before, importable from the modules that
raised them, and the command line's policy (a `SimoError` is one line, anything else a bug with its traceback)."""

from __future__ import annotations

import dataclasses
import sys

import pytest

import hf_simo.errors as E
from hf_simo.cli.runner import Command, bug_note


# class -> the built-in(s) it has always been (or, for the new ones, the one it refines)
BUILT_INS = {
    E.OptionError: (ValueError,),
    E.MergeOptionError: (ValueError,),
    E.TaskSpecError: (ValueError,),
    E.CheckpointError: (ValueError,),
    E.UnsafeCheckpointError: (ValueError,),
    E.NotFineTunedError: (ValueError,),
    E.PublishError: (ValueError,),
    E.ImageInputError: (ValueError,),
    E.DataError: (ValueError,),
    E.DataFormatError: (ValueError,),
    E.UnknownTaskError: (KeyError, ValueError),
    E.NotFoundError: (FileNotFoundError,),
    E.DatasetNotFoundError: (FileNotFoundError,),
    E.OutputExistsError: (FileExistsError,),
    E.OutputBusyError: (RuntimeError,),
    E.TrainingError: (RuntimeError,),
    E.RunConflictError: (RuntimeError,),
    E.UnsupportedFormatError: (ValueError,),  # a CheckpointError (issue 13)
    E.UnsupportedExportError: (ValueError,),
}

# where each class was defined before issue 11: the old import keeps working (the same class)
OLD_HOMES = {
    "hf_simo.hub": ["CheckpointError", "UnsafeCheckpointError"],
    "hf_simo.configuration_simo": ["TaskSpecError"],
    "hf_simo.merging.checks": ["NotFineTunedError"],  # was hf_simo.merging.sources (split by issue 11, WP-A)
    "hf_simo.merging.merge_methods": ["MergeOptionError"],  # was hf_simo.merging.methods
    "hf_simo.merging": ["MergeOptionError", "NotFineTunedError"],
    "hf_simo.publishing": ["PublishError"],
    "hf_simo.image_processing_simo": ["ImageInputError"],
    "hf_simo.atomic": ["OutputBusyError"],
    "hf_simo.data": ["DataFormatError", "DatasetNotFoundError"],
    "hf_simo.data._common": ["DataFormatError", "DatasetNotFoundError"],
    "hf_simo.training": ["TrainingError", "RunConflictError"],
    "hf_simo.training.loop": ["TrainingError"],
    "hf_simo.training.run": ["RunConflictError"],
    "hf_simo": ["CheckpointError", "UnsafeCheckpointError", "TaskSpecError", "ImageInputError", "SimoError"],
}


def test_every_domain_error_is_a_simo_error_and_its_old_built_in():
    defined = {v for v in vars(E).values() if isinstance(v, type) and issubclass(v, Exception)}
    assert defined - {E.SimoError} == set(BUILT_INS)  # a new class needs a row here
    for cls, built_ins in BUILT_INS.items():
        error = cls("the message names the problem")
        assert isinstance(error, E.SimoError), cls
        for built_in in built_ins:
            assert isinstance(error, built_in), (cls, built_in)
    assert issubclass(E.MergeOptionError, E.OptionError)
    assert issubclass(E.NotFineTunedError, E.CheckpointError) and issubclass(
        E.UnsafeCheckpointError, E.CheckpointError
    )
    assert issubclass(E.DatasetNotFoundError, E.NotFoundError) and issubclass(E.DataFormatError, E.DataError)


def test_unknown_task_error_prints_its_message_unquoted():
    # a bare KeyError prints repr(message); the one-line CLI output must read as the message
    assert str(E.UnknownTaskError("task 'x' is not in the model")) == "task 'x' is not in the model"
    assert str(KeyError("task 'x'")) == "\"task 'x'\""
    with pytest.raises(KeyError, match="unknown task"):  # old `except KeyError` clauses still catch it
        raise E.UnknownTaskError("unknown task 'x'")


@pytest.mark.parametrize("module", sorted(OLD_HOMES))
def test_old_import_paths_give_the_same_classes(module):
    import importlib

    imported = importlib.import_module(module)
    for name in OLD_HOMES[module]:
        assert getattr(imported, name) is getattr(E, name), (module, name)


@dataclasses.dataclass
class _Args:
    value: int = 1


def _command(run):
    return Command("hf-simo test", (_Args,), run)


def test_a_simo_error_is_one_line_exit_1_and_debug_shows_its_traceback(capsys):
    def fails(args):
        raise E.CheckpointError("org/x is not a checkpoint;\n  pass a folder")

    assert _command(fails).exit_code([]) == 1
    err = capsys.readouterr().err
    assert err == "hf-simo test: error: org/x is not a checkpoint; pass a folder\n"
    with pytest.raises(E.CheckpointError):
        _command(fails).exit_code(["--debug"])
    with pytest.raises(SystemExit, match=r"^error: org/x is not a checkpoint; pass a folder$"):
        _command(fails).main([])  # a recipe: SystemExit with the line (status 1)


def test_any_other_error_is_a_bug_shown_with_its_traceback(capsys):
    def has_a_bug(args):
        raise ValueError("an internal invariant broke")

    with pytest.raises(ValueError, match="an internal invariant broke") as info:
        _command(has_a_bug).exit_code([])
    assert capsys.readouterr().err == ("" if sys.version_info >= (3, 11) else bug_note("hf-simo test") + "\n")
    if sys.version_info >= (3, 11):  # printed under the traceback
        assert info.value.__notes__ == [bug_note("hf-simo test")]
        assert "this is a bug" in bug_note("hf-simo test")
    with pytest.raises(ValueError):
        _command(has_a_bug).main([])  # recipes too: never turned into a one-line user error


def test_option_errors_at_parsing_are_one_line(capsys):
    @dataclasses.dataclass
    class Sized:
        size: int = 1

        def __post_init__(self):
            from hf_simo.utils.fields import require_positive

            require_positive(self, "size")

    command = Command("hf-simo sized", (Sized,), lambda args: 0)
    assert command.exit_code(["--size", "0"]) == 1
    assert capsys.readouterr().err == "hf-simo sized: error: --size must be a positive integer, got 0\n"
    assert command.exit_code(["--size", "3"]) == 0


def test_debug_in_the_config_file_shows_the_traceback_too(tmp_path):
    def fails(args):
        raise E.DataError("no such split")

    config = tmp_path / "c.yaml"
    config.write_text("debug: true\n")
    with pytest.raises(E.DataError, match="no such split"):
        _command(fails).exit_code(["--config", str(config)])
