"""`hf-simo`: every verb's help, exit codes, one-line errors, and one tiny run of each verb that is quick here
(`merge` runs end to end in test_merge_cli.py, `realign` in test_realign_job.py, `demo` in test_demo.py)."""

import json
import subprocess
import sys

import pytest
from huggingface_hub import ModelCard

from helpers.checkpoints import build_base, build_sources
from hf_simo import SimoModel
from hf_simo.cli import main
from hf_simo.testing_utils import save_tiny_dataset


VERBS = ["demo", "merge", "realign", "evaluate", "relationships", "card", "push", "predict"]


def exit_code(argv) -> int:
    """`hf-simo ARGV`'s exit status: what `main` returns, or the code of the `SystemExit` it raises (argparse's usage
    errors of the top-level parser and of hand-written verbs)."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return 0 if exit_.code is None else exit_.code


def test_top_level_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert verb in out


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb, capsys):
    try:
        code = main([verb, "--help"])
    except SystemExit as exit_:
        code = exit_.code
    assert code in (0, None)
    out = capsys.readouterr().out
    assert f"hf-simo {verb}" in out and "--" in out


def test_no_verb_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "<verb>" in capsys.readouterr().err


def test_typos_exit_2_with_a_suggestion(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["evaluat", "x"])
    assert exit_.value.code == 2
    assert "did you mean 'evaluate'" in capsys.readouterr().err
    assert exit_code(["push", "folder", "org/name", "--dry-rn"]) == 2
    assert "did you mean --dry-run" in capsys.readouterr().err


def test_user_errors_are_one_line_exit_1(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hf-simo evaluate: error:") and err.count("\n") == 1 and "Traceback" not in err


def test_console_script_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hf_simo.cli", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stdout.startswith("hf_simo ")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    base, folders = build_sources(root / "sources")
    data = save_tiny_dataset(root / "data", train=8, validation=8, test=6)
    return {"root": root, "base": base, "tasks": folders, "data": data}


def test_evaluate_prints_and_writes_metrics(tiny, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    code = main(
        [
            "evaluate",
            str(tiny["tasks"][1]),
            "--dataset",
            str(tiny["data"]),
            "--split",
            "test",
            "--output_file",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| depth | abs_err |" in printed
    saved = json.loads(out.read_text())
    assert saved["split"] == "test" and set(saved["results"]) == {"depth"}
    assert saved["results"]["depth"]["abs_err"] > 0
    assert main(["evaluate", str(tiny["tasks"][1]), "--dataset", str(tiny["data"]), "--split", "nope"]) == 1


def test_card_writes_and_prints(tiny, tmp_path, capsys):
    folder = tmp_path / "model"
    SimoModel.from_pretrained(tiny["tasks"][0]).save_pretrained(folder)
    (folder / "README.md").unlink()
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"results": {"segmentation": {"miou": 0.5, "pixel_accuracy": 0.8}}}))
    assert main(["card", str(folder), "--results", str(results), "--dataset-name", "tiny"]) == 0
    card = ModelCard.load(folder / "README.md")
    values = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert values == {"miou": 0.5, "pixel_accuracy": 0.8}
    capsys.readouterr()
    assert main(["card", str(folder), "--print"]) == 0
    assert "SimoModel.from_pretrained" in capsys.readouterr().out


def test_push_dry_run_and_missing_token(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    folder = tiny["tasks"][2]
    assert main(["push", str(folder), "org/name", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would push 4 file(s) to org/name" in out and "model.safetensors" in out
    assert main(["push", str(folder), "org/name"]) == 1
    err = capsys.readouterr().err
    assert "token" in err.lower() and "HF_TOKEN" in err and err.count("\n") == 1


def test_relationships_writes_plots_and_report(tiny, tmp_path, capsys):
    argv = ["relationships", "--base_model", str(tiny["base"]), "--task_checkpoints", *map(str, tiny["tasks"])]
    argv += ["--dataset", str(tiny["data"]), "--validation_samples", "8", "--lambdas", "0", "0.5", "1"]
    argv += ["--matrix-lambda", "1", "--output-dir", str(tmp_path / "rel"), "--disable_tqdm"]  # dashed forms too
    assert main(argv) == 0
    for name in ("relationships.png", "relationships.svg", "relationship_matrix.png", "relationships.md"):
        assert (tmp_path / "rel" / name).stat().st_size > 0, name
    saved = json.loads((tmp_path / "rel" / "relationships.json").read_text())
    assert saved["lambdas"] == [0.0, 0.5, 1.0]
    assert "wrote" in capsys.readouterr().out
    bad = ["relationships", "--task_checkpoints", f"edges={tiny['tasks'][1]}", "--dataset", str(tiny["data"])]
    assert main([*bad, "--output-dir", str(tmp_path / "x")]) == 1
    assert "no labels for task(s) ['edges']" in capsys.readouterr().err
    assert exit_code([*argv, "--lambdas"]) == 2  # an empty λ grid is a usage error


def test_relationships_refuse_a_base_the_tasks_were_not_fine_tuned_from_unless_allowed(tiny, tmp_path, capsys):
    build_base(tmp_path / "stranger", seed=321)
    argv = ["relationships", "--base_model", str(tmp_path / "stranger"), "--dataset", str(tiny["data"])]
    argv += ["--task_checkpoints", *map(str, tiny["tasks"]), "--disable_tqdm"]
    argv += ["--validation_samples", "8", "--lambdas", "0", "1", "--output_dir", str(tmp_path / "rel")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "does not look fine-tuned from the base" in err and "--allow-distant" in err
    with pytest.warns(UserWarning, match="may not be fine-tuned from this base"):
        assert main([*argv, "--allow-distant"]) == 0
    assert (tmp_path / "rel" / "relationships.json").is_file()


def test_relationships_run_on_the_default_dataset(tmp_path, capsys):
    """The embedded benchmark by default: only its validation split is built (no 0-sample training split)."""
    from helpers.checkpoints import build_task
    from hf_simo.data import get_task_specs

    base = build_base(tmp_path / "base")
    argv = [
        "relationships",
        "--base_model",
        str(tmp_path / "base"),
        "--lambdas",
        "0",
        "1",
        "--validation_samples",
        "8",
    ]
    for seed, (task, spec) in enumerate(get_task_specs("nyuv2").items()):
        build_task(tmp_path / task, base, task, seed=seed + 1, spec=spec)
        argv += ["--task_checkpoints", str(tmp_path / task)]  # repeated: the list extends
    assert main([*argv, "--output_dir", str(tmp_path / "rel"), "--disable_tqdm"]) == 0, capsys.readouterr().err
    saved = json.loads((tmp_path / "rel" / "relationships.json").read_text())
    assert saved["lambdas"] == [0.0, 1.0] and saved["primary_tasks"] == ["segmentation", "depth", "normals"]


def test_relationships_options_are_checked_before_any_work(tiny, tmp_path, capsys, monkeypatch):
    import hf_simo.analysis.sweep

    def never(*args, **kwargs):
        raise AssertionError("the sweep ran before the options were checked")

    monkeypatch.setattr(hf_simo.analysis.sweep, "run_relationships", never)
    argv = ["relationships", "--task_checkpoints", str(tiny["tasks"][0]), "--output_dir", str(tmp_path / "rel")]
    assert main([*argv, "--lambdas", "0", "0.5"]) == 1  # the default --matrix_lambda 1 is not on the grid
    err = capsys.readouterr().err
    assert "--matrix_lambda 1 is not on the λ grid ['0', '0.5']" in err and "--lambdas" in err
    assert main([*argv, "--lambdas", "0", "nan"]) == 1
    assert "--lambdas: the λ grid must hold finite numbers" in capsys.readouterr().err
    assert not (tmp_path / "rel").exists()  # nothing written, not even the folder


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "model", "--per_device_eval_batch_size", "0"],
        ["evaluate", "model", "--test_samples", "-3"],
        ["relationships", "--task_checkpoints", "t", "--validation_samples", "0"],
        ["relationships", "--task_checkpoints", "t", "--image-size", "0"],
        ["predict", "model", "image.png", "--output_dir", "o", "--per_device_eval_batch_size", "0"],
    ],
)
def test_non_positive_sizes_are_one_line_errors_naming_the_option(argv, capsys):
    """Checked by the options' dataclasses at parsing, before any work (as every dataclass verb and recipe)."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    name = argv[-2].replace("-", "_").lstrip("_")
    assert f"--{name} must be a positive integer, got {int(argv[-1])}" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_non_positive_recipe_options_are_one_line_errors_before_any_work(capsys):
    assert main(["realign", "--per_device_train_batch_size", "0"]) == 1
    err = capsys.readouterr().err
    assert "--per_device_train_batch_size must be a positive integer, got 0" in err and err.count("\n") == 1
    assert main(["demo", "--realign_epochs", "0"]) == 1
    assert "--realign_epochs must be a positive integer, got 0" in capsys.readouterr().err


def test_debug_shows_the_traceback_of_every_kind_of_verb(tiny, tmp_path, capsys):
    from hf_simo import CheckpointError
    from hf_simo.data import DatasetNotFoundError

    merge = [
        "merge",
        "--task_checkpoints",
        str(tmp_path / "nowhere"),
        "--base_model",
        str(tiny["base"]),
        "--output_dir",
        str(tmp_path / "o"),
    ]
    assert main(merge) == 1  # without --debug: one line
    assert "nowhere" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="nowhere"):
        main(["--debug", *merge])
    with pytest.raises(DatasetNotFoundError, match="missing-dataset"):  # a dataclass verb (run_recipe's errors)
        main(["--debug", "realign", "--dataset", str(tmp_path / "missing-dataset")])
    with pytest.raises(ValueError, match="--rank must be a positive integer"):  # ... and its parsing errors
        main(["realign", "--rank", "0", "--debug"])
    with pytest.raises(FileNotFoundError):
        main(["--debug", "card", str(tmp_path / "no-model")])


def test_card_names_a_results_file_that_is_not_json(tiny, tmp_path, capsys):
    folder = tmp_path / "model"
    SimoModel.from_pretrained(tiny["tasks"][0]).save_pretrained(folder)
    results = tmp_path / "results.json"
    results.write_text('{"results": {"segmentation": {"miou": 0.5,}}}')
    capsys.readouterr()
    assert main(["card", str(folder), "--results", str(results)]) == 1
    err = capsys.readouterr().err
    assert f"--results {results} is not valid JSON (Expecting property name enclosed in double quotes" in err
    assert "line 1, column" in err and err.count("\n") == 1
