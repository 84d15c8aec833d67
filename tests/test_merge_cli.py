"""`hf-simo merge` and `recipes/merge.py` end to end, in-process: options generated from the merge dataclasses,
outputs, exit codes, old spellings refused, push at the HfApi boundary."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest
import torch

from helpers.checkpoints import build_sources, leftovers
from helpers.hub import FakeHfApi
from hf_simo import SimoModel
from hf_simo.cli import main as hf_simo_main
from hf_simo.cli.merge import ARGUMENTS, COMMAND, RECIPE, main
from hf_simo.merging import METHODS, merge, merge_from_arguments, merge_to_folder
from hf_simo.merging.arguments import MERGE_METHOD_OPTIONS


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return build_sources(tmp_path_factory.mktemp("cli"))


def test_cli_merges_with_ties_through_the_top_level_parser(sources, tmp_path, capsys):
    base, tasks = sources
    argv = ["merge", "--base_model", str(base), "--task_checkpoints", f"seg={tasks[0]}", "--task_checkpoints"]
    argv += [
        str(tasks[1]),
        "--merge_method",
        "ties",
        "--density",
        "0.3",
        "--alpha",
        "0.9",
        "--output_dir",
        str(tmp_path / "out"),
        "--disable_tqdm",
    ]
    assert hf_simo_main(argv) == 0
    printed = capsys.readouterr().out
    assert "merged 2 task(s) with ties (alpha=0.9)" in printed and str(tasks[0]) in printed
    model = SimoModel.from_pretrained(tmp_path / "out")
    assert model.task_names == ["seg", "depth"]
    assert model.config.merge["options"] == {"density": 0.3, "scope": "global", "aggregate": "mean"}
    expected = merge([f"seg={tasks[0]}", tasks[1]], base, "ties", density=0.3, alpha=0.9)
    for key, value in expected.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_cli_generic_options_dtype_and_coefficients(sources, tmp_path):
    base, tasks = sources
    coefficients = tmp_path / "coefficients.json"
    coefficients.write_text(json.dumps({"segmentation": 0.5, "depth": [1, 0.9, 0.8, 0.7, 0.6, 0.5]}))
    code = main(
        [
            "--task-checkpoints",
            str(tasks[0]),
            str(tasks[1]),
            "--base-model",
            str(base),
            "--merge-method",
            "dare",
            "--merge_options",
            '{"density": 0.5}',
            "--sign_election",
            "true",
            "--dare_seed",
            "4",
            "--dtype",
            "float16",
            "--coefficients",
            str(coefficients),
            "--output-dir",
            str(tmp_path / "o"),
            "--disable-tqdm",
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
        (["--merge_method", "ties", "--density", "0"], "density"),
        (["--alpha", "-1"], "alpha must be"),
        (["--merge_method", "bogus"], "unknown merging method 'bogus'"),
        (["--alpha", "1e300"], "contains inf"),  # overflows float32: refused, nothing written
    ],
)
def test_cli_bad_input_exits_with_1_and_a_message(sources, tmp_path, capsys, extra, message):
    base, tasks = sources
    code = main(
        ["--task_checkpoints", str(tasks[0]), "--base_model", str(base), "--output_dir", str(tmp_path / "bad"), *extra]
    )
    assert code == 1
    assert message in capsys.readouterr().err
    assert leftovers(tmp_path, "bad") == []


def test_cli_missing_checkpoint_exits_with_1(sources, tmp_path, capsys):
    base, _ = sources
    code = main(
        [
            "--task_checkpoints",
            str(tmp_path / "nowhere"),
            "--base_model",
            str(base),
            "--output_dir",
            str(tmp_path / "x"),
        ]
    )
    assert code == 1
    assert "nowhere" in capsys.readouterr().err


def test_cli_push_to_hub_uses_hfapi(sources, tmp_path, monkeypatch, capsys):
    import hf_simo.publishing

    base, tasks = sources
    FakeHfApi.calls = []
    monkeypatch.setattr(hf_simo.publishing, "HfApi", FakeHfApi)
    code = main(
        [
            "--task_checkpoints",
            str(tasks[0]),
            "--base_model",
            str(base),
            "--output_dir",
            str(tmp_path / "p"),
            "--push-to-hub",
            "--hub_model_id",
            "me/m",
            "--token",
            "tok",
            "--commit-message",
            "merge v1",
            "--disable_tqdm",
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
    fields = {f.name for cls in ARGUMENTS for f in dataclasses.fields(cls)}
    parameters = set(inspect.signature(merge_to_folder).parameters) - {"options", "method_options"}
    option_names = {name for spec in METHODS.values() for name in spec.options}
    # every parameter of merge_to_folder is an option (under the vocabulary's name), every method option is one
    spelled = {"tasks": "task_checkpoints", "base": "base_model", "method": "merge_method", "hub": "token"}
    spelled |= {"overwrite": "overwrite_output_dir", "max_relative_distance": "max_relative_distance"}
    assert {spelled.get(p, p) for p in parameters} <= fields
    assert {name for name, key in MERGE_METHOD_OPTIONS.items() if key in option_names} == set(MERGE_METHOD_OPTIONS)

    base, tasks = sources
    config = {
        "output_dir": str(tmp_path / "from_dict"),
        "task_checkpoints": [f"seg={tasks[0]}", str(tasks[2])],
        "base_model": str(base),
        "merge_method": "ties",
        "density": 0.3,
        "scope": "tensor",
        "alpha": 0.6,
        "disable_tqdm": True,
    }
    yaml_file = tmp_path / "from_dict.yaml"
    yaml_file.write_text(json.dumps(config))  # JSON is YAML
    from_yaml = RECIPE.parse(["--config", str(yaml_file)])
    from_argv = RECIPE.parse(
        [
            "--output_dir",
            config["output_dir"],
            "--task_checkpoints",
            *config["task_checkpoints"],
            "--base_model",
            str(base),
            "--merge_method",
            "ties",
            "--density",
            "0.3",
            "--scope",
            "tensor",
            "--alpha",
            "0.6",
            "--disable_tqdm",
            "true",
        ]
    )
    assert from_yaml == from_argv
    out = merge_from_arguments(*from_yaml[0][:3], from_yaml[0][3])
    expected = merge_to_folder(
        tmp_path / "direct", config["task_checkpoints"], str(base), "ties", density=0.3, scope="tensor", alpha=0.6
    )
    assert (out / "model.safetensors").read_bytes() == (expected / "model.safetensors").read_bytes()


def test_merge_recipe_reads_a_yaml_file(sources, tmp_path):
    import importlib.util
    from pathlib import Path

    base, tasks = sources
    config = tmp_path / "merge.yaml"
    config.write_text(
        f"output_dir: {tmp_path / 'out'}\nbase_model: {base}\ntask_checkpoints:\n"
        + "".join(f"  - {t}\n" for t in tasks)
        + "merge_method: ties\ndensity: 0.5\nalpha: 0.7\ndisable_tqdm: true\n"
    )
    spec = importlib.util.spec_from_file_location("recipe_merge", Path(__file__).parents[1] / "recipes" / "merge.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    out = recipe.main([str(config)])
    merged = json.loads((out / "config.json").read_text())["merge"]
    assert (merged["method"], merged["alpha"], merged["options"]["density"]) == ("ties", 0.7, 0.5)
    # --config plus overrides: the command line wins over the file
    again = recipe.main(["--config", str(config), "--alpha", "0.4", "--output_dir", str(tmp_path / "again")])
    assert json.loads((again / "config.json").read_text())["merge"]["alpha"] == 0.4
    config.write_text(config.read_text() + "densty: 0.2\n")  # a typo in a key is an error, not a silent default
    with pytest.raises(SystemExit, match="densty"):
        recipe.main([str(config)])
    config.write_text(config.read_text().replace("densty: 0.2\n", "method: ties\n"))  # an old key names the new one
    with pytest.raises(SystemExit, match="`method` was renamed: use merge_method"):
        recipe.main([str(config)])


def test_the_verb_and_the_recipe_are_one_command(sources, tmp_path):
    """`hf-simo merge ...` and `recipes/merge.py --config merge.yaml` with the same options write the same folder."""
    base, tasks = sources
    assert COMMAND.arguments == RECIPE.arguments == ARGUMENTS and COMMAND.renamed == RECIPE.renamed
    config = tmp_path / "merge.yaml"
    config.write_text(
        f"base_model: {base}\ntask_checkpoints: [{tasks[0]}, {tasks[1]}]\nmerge_method: dare\ndensity: 0.5\n"
        f"output_dir: {tmp_path / 'recipe'}\n"
    )
    from_recipe = RECIPE.main(["--config", str(config)])
    argv = ["merge", "--base_model", str(base), "--task_checkpoints", str(tasks[0]), str(tasks[1])]
    argv += ["--merge_method", "dare", "--density", "0.5", "--output_dir", str(tmp_path / "verb")]
    assert hf_simo_main(argv) == 0
    for name in ("model.safetensors", "config.json"):
        verb = (tmp_path / "verb" / name).read_bytes()
        assert verb == (from_recipe / name).read_bytes(), name


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (["--task", "x"], "--task was renamed: use --task_checkpoints"),
        (["--tasks", "x"], "--tasks was renamed: use --task_checkpoints"),
        (["--base", "x"], "--base was renamed: use --base_model"),
        (["--revision", "v1"], "--revision was removed: give the base's revision inline: --base_model NAME@REVISION"),
        (["--base_revision", "v1"], "--base_revision was removed"),
        (["--method", "ties"], "--method was renamed: use --merge_method"),
        (["--seed", "1"], "--seed was renamed: use --dare_seed"),
        (["--overwrite"], "--overwrite was renamed: use --overwrite_output_dir"),
        (["--private"], "--private was renamed: use --hub_private_repo"),
        (["--no-progress"], "--no_progress was renamed: use --disable_tqdm"),
        (["--progress", "false"], "--progress was renamed: use --disable_tqdm"),
        (["--push-to-hub", "me/m"], "--push_to_hub is a flag now: use --push_to_hub --hub_model_id me/m"),
        (["--push_to_hub=me/m"], "--push_to_hub is a flag now: use --push_to_hub --hub_model_id me/m"),
        (["--output", "x"], "unrecognized arguments: --output (did you mean --output_dir?)"),
    ],
)
def test_old_spellings_exit_2_naming_the_new_option(tmp_path, capsys, old, new):
    assert main(["--task_checkpoints", "a", "--output_dir", str(tmp_path / "never"), *old]) == 2
    assert new in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize(
    ("argv", "missing"),
    [
        (["--output_dir", "x"], "--task_checkpoints"),
        (["--task_checkpoints", "a"], "--output_dir"),
        ([], "--task_checkpoints, --output_dir"),
    ],
)
def test_missing_required_options_are_usage_errors(argv, missing, capsys):
    assert main(argv) == 2
    assert f"the following arguments are required: {missing}" in capsys.readouterr().err


def test_push_options_without_push_to_hub_are_refused(sources, tmp_path, capsys):
    base, tasks = sources
    argv = ["--task_checkpoints", str(tasks[0]), "--base_model", str(base), "--output_dir", str(tmp_path / "np")]
    assert main([*argv, "--hub_model_id", "me/m", "--create_pr"]) == 1
    assert "--hub_model_id, --create_pr only apply with --push_to_hub" in capsys.readouterr().err
    assert not (tmp_path / "np").exists()  # refused before any work


def test_shipped_merge_yaml_parses():
    from helpers.recipes import RECIPES

    parsed, _ = RECIPE.parse(["--config", str(RECIPES / "configs" / "merge.yaml")])
    assert parsed[1].merge_method == "ties" and len(parsed[0].task_checkpoints) == 3
    assert RECIPE.parse([str(RECIPES / "configs" / "merge.yaml")])[0] == parsed  # the legacy sole-YAML form


def test_merge_through_the_top_level_cli(sources, tmp_path, capsys):
    argv = ["merge", "--base_model", str(sources[0]), "--output_dir", str(tmp_path / "merged"), "--disable_tqdm"]
    for folder in sources[1]:
        argv += ["--task_checkpoints", str(folder)]
    assert hf_simo_main([*argv, "--merge_method", "ties", "--density", "0.5", "--alpha", "0.8"]) == 0
    merged = SimoModel.from_pretrained(tmp_path / "merged")
    assert merged.task_names == ["segmentation", "depth", "normals"]
    assert merged.config.merge["method"] == "ties" and merged.config.merge["alpha"] == 0.8
    assert "merged 3 task(s) with ties" in capsys.readouterr().out
    assert hf_simo_main([*argv, "--merge_method", "ties", "--density", "0"]) == 1  # out of range: one line
    assert "density" in capsys.readouterr().err
