"""`hf-simo merge` end to end, in-process: argparse wiring, outputs, exit codes, push at the HfApi boundary."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json

import pytest
import torch

from helpers.checkpoints import build_sources, leftovers
from helpers.hub import FakeHfApi
from hf_simo import SimoModel
from hf_simo.cli import main as hf_simo_main
from hf_simo.cli.merge import add_merge_subparser, main, run_merge
from hf_simo.merging import METHODS, MergeArguments, merge, merge_from_arguments, merge_to_folder


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return build_sources(tmp_path_factory.mktemp("cli"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-simo")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_merge_subparser(subparsers)
    return parser


def test_cli_merges_with_ties_through_the_subparser(sources, tmp_path, capsys):
    base, tasks = sources
    argv = ["merge", "--base", str(base), "--task", f"seg={tasks[0]}", "--task", str(tasks[1])]
    argv += [
        "--method",
        "ties",
        "--density",
        "0.3",
        "--alpha",
        "0.9",
        "--output",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    args = _parser().parse_args(argv)
    assert args.func is run_merge
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "merged 2 task(s) with ties (alpha=0.9)" in printed and str(tasks[0]) in printed
    model = SimoModel.from_pretrained(tmp_path / "out")
    assert model.task_names == ["seg", "depth"]
    assert model.config.merge["options"] == {"density": 0.3, "scope": "global", "aggregate": "mean"}
    expected = merge([f"seg={tasks[0]}", tasks[1]], base, "ties", density=0.3, alpha=0.9, progress=False)
    for key, value in expected.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_cli_generic_options_dtype_and_coefficients(sources, tmp_path):
    base, tasks = sources
    coefficients = tmp_path / "coefficients.json"
    coefficients.write_text(json.dumps({"segmentation": 0.5, "depth": [1, 0.9, 0.8, 0.7, 0.6, 0.5]}))
    code = main(
        [
            "--task",
            str(tasks[0]),
            "--task",
            str(tasks[1]),
            "--base",
            str(base),
            "--method",
            "dare",
            "--option",
            "density=0.5",
            "--option",
            "sign_election=true",
            "--seed",
            "4",
            "--dtype",
            "float16",
            "--coefficients",
            str(coefficients),
            "--output",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    assert code == 0
    config = json.loads((tmp_path / "o" / "config.json").read_text())
    assert config["merge"]["options"]["sign_election"] is True and config["merge"]["options"]["seed"] == 4
    assert config["merge"]["coefficients"] == [[0.5] * 6, [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]]
    assert config["dtype"] == "float16"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "ties", "--density", "0"], "density"),
        (["--alpha", "-1"], "alpha must be"),
        (["--method", "bogus"], "unknown merging method 'bogus'"),
        (["--alpha", "1e300"], "contains inf"),  # overflows float32: refused, nothing written
    ],
)
def test_cli_bad_input_exits_with_1_and_a_message(sources, tmp_path, capsys, extra, message):
    base, tasks = sources
    code = main(["--task", str(tasks[0]), "--base", str(base), "--output", str(tmp_path / "bad"), *extra])
    assert code == 1
    assert message in capsys.readouterr().err
    assert leftovers(tmp_path, "bad") == []


def test_cli_missing_checkpoint_exits_with_1(sources, tmp_path, capsys):
    base, _ = sources
    code = main(["--task", str(tmp_path / "nowhere"), "--base", str(base), "--output", str(tmp_path / "bad")])
    assert code == 1
    assert "nowhere" in capsys.readouterr().err


def test_cli_push_to_hub_uses_hfapi(sources, tmp_path, monkeypatch, capsys):
    import hf_simo.publishing

    base, tasks = sources
    FakeHfApi.calls = []
    monkeypatch.setattr(hf_simo.publishing, "HfApi", FakeHfApi)
    code = main(
        [
            "--task",
            str(tasks[0]),
            "--base",
            str(base),
            "--output",
            str(tmp_path / "p"),
            "--push-to-hub",
            "me/m",
            "--token",
            "tok",
            "--commit-message",
            "merge v1",
            "--no-progress",
        ]
    )
    assert code == 0
    upload = [call for name, call in FakeHfApi.calls if name == "create_commit"]
    assert len(upload) == 1
    assert upload[0]["repo_id"] == "me/m"
    assert upload[0]["files"] == ["README.md", "config.json", "model.safetensors", "preprocessor_config.json"]
    assert upload[0]["commit_message"] == "merge v1" and upload[0]["revision"] is None
    assert upload[0]["token"] == "tok"
    captured = capsys.readouterr()
    assert "pushed to me/m: https://huggingface.co/me/m/commit/0123" in captured.out
    assert "tok" not in captured.out + captured.err


def test_merge_arguments_map_one_to_one_onto_merge_to_folder(sources, tmp_path):
    from transformers import HfArgumentParser

    fields = {f.name for f in dataclasses.fields(MergeArguments)}
    parameters = set(inspect.signature(merge_to_folder).parameters) - {"options", "method_options"}
    option_names = {name for spec in METHODS.values() for name in spec.options}
    assert parameters <= fields and fields - parameters <= option_names

    base, tasks = sources
    parser = HfArgumentParser(MergeArguments)
    config = {
        "output_dir": str(tmp_path / "from_dict"),
        "tasks": [f"seg={tasks[0]}", str(tasks[2])],
        "base": str(base),
        "method": "ties",
        "density": 0.3,
        "scope": "tensor",
        "alpha": 0.6,
        "progress": False,
    }
    (from_dict,) = parser.parse_dict(config)
    (from_argv,) = parser.parse_args_into_dataclasses(
        [
            "--output_dir",
            config["output_dir"],
            "--tasks",
            *config["tasks"],
            "--base",
            str(base),
            "--method",
            "ties",
            "--density",
            "0.3",
            "--scope",
            "tensor",
            "--alpha",
            "0.6",
            "--progress",
            "false",
        ]
    )
    assert from_dict == from_argv
    out = merge_from_arguments(from_dict)
    expected = merge_to_folder(tmp_path / "direct", **{k: v for k, v in config.items() if k != "output_dir"})
    assert (out / "model.safetensors").read_bytes() == (expected / "model.safetensors").read_bytes()


def test_merge_recipe_reads_a_yaml_file(sources, tmp_path):
    import importlib.util
    from pathlib import Path

    base, tasks = sources
    config = tmp_path / "merge.yaml"
    config.write_text(
        f"output_dir: {tmp_path / 'out'}\nbase: {base}\ntasks:\n"
        + "".join(f"  - {t}\n" for t in tasks)
        + "method: ties\ndensity: 0.5\nalpha: 0.7\nprogress: false\n"
    )
    spec = importlib.util.spec_from_file_location("recipe_merge", Path(__file__).parents[1] / "recipes" / "merge.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    out = recipe.main([str(config)])
    merged = json.loads((out / "config.json").read_text())["merge"]
    assert (merged["method"], merged["alpha"], merged["options"]["density"]) == ("ties", 0.7, 0.5)
    config.write_text(config.read_text() + "densty: 0.2\n")  # a typo in a key is an error, not a silent default
    with pytest.raises(SystemExit, match="densty"):
        recipe.main([str(config)])


def test_shipped_merge_yaml_parses():
    from helpers.recipes import RECIPES
    from hf_simo.cli.merge import RECIPE

    (parsed,), _ = RECIPE.parse(["--config", str(RECIPES / "configs" / "merge.yaml")])
    assert parsed.method == "ties" and len(parsed.tasks) == 3
    assert RECIPE.parse([str(RECIPES / "configs" / "merge.yaml")])[0] == (parsed,)  # the legacy sole-YAML form


def test_merge_through_the_top_level_cli(sources, tmp_path, capsys):
    argv = ["merge", "--base", str(sources[0]), "--output", str(tmp_path / "merged"), "--no-progress"]
    for folder in sources[1]:
        argv += ["--task", str(folder)]
    assert hf_simo_main([*argv, "--method", "ties", "--density", "0.5", "--alpha", "0.8"]) == 0
    merged = SimoModel.from_pretrained(tmp_path / "merged")
    assert merged.task_names == ["segmentation", "depth", "normals"]
    assert merged.config.merge["method"] == "ties" and merged.config.merge["alpha"] == 0.8
    assert "merged 3 task(s) with ties" in capsys.readouterr().out
    assert hf_simo_main([*argv, "--method", "ties", "--density", "0"]) == 1  # out of range: one line, nothing written
    assert "density" in capsys.readouterr().err
