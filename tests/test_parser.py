"""`SimoArgumentParser`: --config plus command-line overrides, list options, positionals, renamed and
not-applicable options, no abbreviations, 'did you mean' (hf_simo/cli/parser.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import yaml

from hf_simo.cli.parser import SimoArgumentParser, parse_args
from hf_simo.errors import NotFoundError, OptionError
from hf_simo.utils.fields import option, require_positive


@dataclass
class Sources:
    task_checkpoints: list[str] | None = option(None, "checkpoints")
    base_model: str | None = option(None, "the base")
    allow_distant: bool = option(False, "warn only")


@dataclass
class Settings:
    output_dir: str = option("out", "where")
    learning_rate: float = option(1e-3, "lr")
    train_samples: int = option(2000, "training samples")
    alphas: list[float] = option([0.1, 0.5], "grid")
    augment: bool = option(True, "augment")

    def __post_init__(self):
        require_positive(self, "train_samples")


@dataclass
class Model:
    model_name_or_path: str = option(help="the model")
    images: list[str] = option(help="image files")
    device: str | None = option(None, "device")


def parser(**kwargs) -> SimoArgumentParser:
    return SimoArgumentParser([Sources, Settings], prog="hf-simo test", **kwargs)


def write_yaml(tmp_path, data, name="config.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_and_command_line():
    sources, settings = parser().parse([])
    assert sources == Sources() and settings == Settings()
    sources, settings = parser().parse(["--base_model", "org/b", "--learning_rate", "0.5", "--no_augment"])
    assert sources.base_model == "org/b" and settings.learning_rate == 0.5 and settings.augment is False


def test_config_then_command_line_overrides(tmp_path):
    config = write_yaml(tmp_path, {"base_model": "org/b", "learning_rate": 0.01, "alphas": [0.2], "augment": False})
    sources, settings = parser().parse(["--config", str(config)])
    assert sources.base_model == "org/b" and settings.learning_rate == 0.01
    assert settings.alphas == [0.2] and settings.augment is False
    sources, settings = parser().parse(["--config", str(config), "--learning_rate", "0.5", "--base-model", "org/c"])
    assert settings.learning_rate == 0.5 and sources.base_model == "org/c"  # the command line wins; dashes work
    assert settings.alphas == [0.2]


def test_a_yaml_first_argument_is_the_config(tmp_path):
    config = write_yaml(tmp_path, {"learning_rate": 0.01})
    assert parser().parse([str(config)]) == parser().parse(["--config", str(config)])
    assert parse_args([Sources, Settings], [str(config)])[1].learning_rate == 0.01
    assert parser().parse([str(config), "--learning_rate", "0.5"])[1].learning_rate == 0.5  # then overrides


def test_lists_take_several_values_repeat_and_replace_the_yaml_list(tmp_path):
    (sources, _) = parser().parse(["--task_checkpoints", "a", "b"])
    assert sources.task_checkpoints == ["a", "b"]
    (sources, _) = parser().parse(["--task_checkpoints", "a", "--task_checkpoints", "b", "c"])
    assert sources.task_checkpoints == ["a", "b", "c"]
    config = write_yaml(tmp_path, {"task_checkpoints": ["y1", "y2"], "alphas": [0.3]})
    (sources, settings) = parser().parse(["--config", str(config), "--task_checkpoints", "a"])
    assert sources.task_checkpoints == ["a"] and settings.alphas == [0.3]  # replaced, not appended
    (_, settings) = parser().parse(["--alphas", "1", "2"])
    assert settings.alphas == [1.0, 2.0] and Settings().alphas == [0.1, 0.5]  # the default is not mutated


def test_unknown_yaml_keys_name_the_closest_option(tmp_path):
    config = write_yaml(tmp_path, {"learning_rte": 0.1})
    with pytest.raises(OptionError, match=r"unknown option 'learning_rte' \(did you mean 'learning_rate'\?\)"):
        parser().parse(["--config", str(config)])
    with pytest.raises(NotFoundError, match="does not exist"):
        parser().parse(["--config", str(tmp_path / "missing.yaml")])
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(OptionError, match="must hold a mapping"):
        parser().parse(["--config", str(tmp_path / "list.yaml")])


def test_values_are_checked_at_parsing(tmp_path):
    with pytest.raises(OptionError, match="--train_samples must be a positive integer, got 0"):
        parser().parse(["--train_samples", "0"])
    config = write_yaml(tmp_path, {"train_samples": -1})
    with pytest.raises(OptionError, match="--train_samples must be a positive integer, got -1"):
        parser().parse(["--config", str(config)])


def test_renamed_options_exit_2_naming_the_new_one(tmp_path, capsys):
    renamed = {"base": "--base_model", "extra_options": "give them as --merge_options '{json}'"}
    with pytest.raises(SystemExit) as exit_:
        parser(renamed=renamed).parse(["--base", "org/b"])
    assert exit_.value.code == 2
    assert "hf-simo test: error: --base was renamed: use --base_model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser(renamed=renamed).parse(["--extra-options=x"])
    assert "--extra_options was removed: give them as --merge_options" in capsys.readouterr().err
    config = write_yaml(tmp_path, {"base": "org/b"})
    with pytest.raises(OptionError, match="`base` was renamed: use base_model"):
        parser(renamed=renamed).parse(["--config", str(config)])


def test_not_applicable_options_exit_2_with_the_reason(tmp_path, capsys):
    command = parser(not_applicable={"train_samples": "no training split is built"})
    assert command.parse([])[1].train_samples == 2000  # the default is fine
    with pytest.raises(SystemExit) as exit_:
        command.parse(["--train_samples", "10"])
    assert exit_.value.code == 2
    assert "--train_samples does not apply to hf-simo test (no training split is built)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        command.parse(["--config", str(write_yaml(tmp_path, {"train_samples": 10}))])
    with pytest.raises(ValueError, match="are not fields"):
        parser(not_applicable={"nope": ""})


def test_positionals_in_order_or_from_the_yaml(tmp_path, capsys):
    model = SimoArgumentParser([Model], prog="hf-simo predict", positional=("model_name_or_path", "images"))
    (parsed,) = model.parse(["org/m", "a.png", "b.png", "--device", "cpu"])
    assert parsed == Model("org/m", ["a.png", "b.png"], "cpu")
    config = write_yaml(tmp_path, {"model_name_or_path": "org/y", "images": ["c.png"]})
    (parsed,) = model.parse(["--config", str(config)])
    assert parsed == Model("org/y", ["c.png"])
    (parsed,) = model.parse(["--config", str(config), "org/z"])
    assert parsed.model_name_or_path == "org/z" and parsed.images == ["c.png"]
    with pytest.raises(SystemExit) as exit_:
        model.parse([])
    assert exit_.value.code == 2 and "required: MODEL_NAME_OR_PATH" in capsys.readouterr().err
    assert "MODEL_NAME_OR_PATH" in model.format_usage() and "--model_name_or_path" not in model.format_help()


def test_no_abbreviations_and_typos_get_a_suggestion(capsys):
    with pytest.raises(SystemExit) as exit_:
        parser().parse(["--output", "x"])  # not --output_dir
    assert exit_.value.code == 2
    assert "unrecognized arguments: --output (did you mean --output_dir?)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser().parse(["--learnin_rate", "1"])
    assert "--learnin_rate (did you mean --learning_rate?)" in capsys.readouterr().err


def test_help_lists_every_field_and_the_config_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        parser().parse(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in ("--task_checkpoints", "--base_model", "--learning_rate", "--alphas", "--config", "--no_augment"):
        assert name in out


def test_the_options_reach_checker_fails_on_a_dropped_option():
    from helpers.options import assert_every_field_covered
    from hf_simo.cli.runner import Command

    command = Command("hf-simo test", (Sources, Settings), lambda s, t: 0, not_applicable={"train_samples": ""})
    observed = {name: "spied" for name in ("task_checkpoints", "base_model", "allow_distant", "output_dir")}
    observed |= {"learning_rate": "spied", "alphas": "spied", "augment": "spied"}
    assert_every_field_covered(command, observed)  # train_samples: refused as not applicable
    with pytest.raises(AssertionError, match=r"neither observed nor refused: \['augment'\]"):
        assert_every_field_covered(command, {k: v for k, v in observed.items() if k != "augment"})
    with pytest.raises(AssertionError, match=r"options the command does not have: \['augmentation'\]"):
        assert_every_field_covered(command, {**observed, "augmentation": "spied"})
