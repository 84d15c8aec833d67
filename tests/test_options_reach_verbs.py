"""Every option of ``hf-simo evaluate``, ``relationships``, ``card``, ``push`` and ``predict`` takes effect or is
refused (issue 11, item 1).

One table per verb: option -> (the command-line words that set it, a check of what it changed). Each row runs the
verb with spies installed where the verb's job looks the names up (`hf_simo.data.loading.load_training_data`, the
job's own model loading, the sweep's pieces, the Hub push), and the check reads what reached them; rows that cannot
reach anything are the verb's ``not_applicable`` and must be refused with exit 2.
`helpers.options.assert_every_field_covered` fails when a field of the verb is in neither, so a new option cannot be
accepted and silently dropped. The first row of each table is a positive control: the spies were called.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from types import SimpleNamespace

import pytest
import torch

import hf_simo.analysis
import hf_simo.analysis.plots
import hf_simo.analysis.sweep
import hf_simo.data
import hf_simo.data.loading
import hf_simo.evaluation
import hf_simo.predict
import hf_simo.publishing
from helpers.options import assert_every_field_covered
from helpers.relationships import hand_made_result
from helpers.tiny import tiny_model
from hf_simo.cli import card as card_verb
from hf_simo.cli import evaluate as evaluate_verb
from hf_simo.cli import main
from hf_simo.cli import predict as predict_verb
from hf_simo.cli import push as push_verb
from hf_simo.cli import relationships as relationships_verb
from hf_simo.hub import HubOptions
from hf_simo.modeling_simo import SimoModel


def _hub_rows(call: str) -> dict:
    """The `HubOptions` rows of a verb whose model read is recorded as `calls[call]` (keyword arguments)."""
    return {
        "token": (["--token", "hf_secret"], lambda c: c[call]["token"] == "hf_secret"),
        "cache_dir": (["--cache_dir", "/tmp/hub-cache"], lambda c: c[call]["cache_dir"] == "/tmp/hub-cache"),
        "local_files_only": (["--local_files_only"], lambda c: c[call]["local_files_only"] is True),
        "allow_pickle": (["--allow_pickle"], lambda c: c[call]["allow_pickle"] is True),
    }


def _data_rows(check_limit: bool = False) -> dict:
    """The `DataArguments` rows that reach the dataset loader (`calls["load"]`, its keyword arguments)."""
    rows = {
        "dataset": (["--dataset", "taskonomy"], lambda c: c["load"]["dataset"] == "taskonomy"),
        "dataset_path": (["--dataset_path", "/data/x"], lambda c: c["load"]["dataset_path"] == "/data/x"),
        "image_size": (["--image_size", "48"], lambda c: c["load"]["image_size"] == 48),
        "validation_samples": (["--validation_samples", "7"], lambda c: c["load"]["validation_samples"] == 7),
        "data_seed": (["--data_seed", "5"], lambda c: c["load"]["data_seed"] == 5),
        "dataset_cache_dir": (["--dataset_cache_dir", "/tmp/dc"], lambda c: c["load"]["cache_dir"] == "/tmp/dc"),
    }
    if check_limit:  # relationships: the validation split is also cut to that many samples
        rows["validation_samples"] = (
            ["--validation_samples", "7"],
            lambda c: c["load"]["validation_samples"] == 7 and c["batches"]["limit"] == 7,
        )
    return rows


def _run_rows(command, base_argv, table, calls, capsys) -> None:
    assert_every_field_covered(command, table)
    for name, (extra, check) in table.items():
        calls.clear()
        code = main([*base_argv, *extra])
        captured = capsys.readouterr()
        assert code == 0, (name, captured.err)
        assert check(calls), (name, extra, calls)


def _refusals(command, base_argv, capsys, values: dict[str, list[str]]) -> None:
    """Each not-applicable option given a non-default value exits 2, naming the option and the reason."""
    assert set(values) == set(command.not_applicable)
    for name, extra in values.items():
        assert main([*base_argv, *extra]) == 2, name
        err = capsys.readouterr().err
        assert f"--{name} does not apply to {command.prog} ({command.not_applicable[name]})" in err, err


# ---------------------------------------------------------------------------------------------- evaluate


@pytest.fixture
def evaluate_spies(monkeypatch):
    calls: dict = {}

    class FakeModel:
        task_names = ["depth"]

        def eval(self):
            return self

    def from_pretrained(cls, name, **kwargs):
        calls["model"] = {"name": name, **kwargs}
        return FakeModel()

    def load_training_data(dataset, **kwargs):
        calls["load"] = {"dataset": dataset, **kwargs}
        return {"validation": "VALIDATION", "test": "TEST"}

    def evaluate_dataset(model, dataset, **kwargs):
        calls["evaluate"] = {"dataset": dataset, **kwargs}
        return {"depth": {"abs_err": 0.25}}

    monkeypatch.setattr(SimoModel, "from_pretrained", classmethod(from_pretrained))
    monkeypatch.setattr(hf_simo.data.loading, "load_training_data", load_training_data)
    monkeypatch.setattr(hf_simo.evaluation, "evaluate_dataset", evaluate_dataset)
    return calls


def test_every_option_of_evaluate_reaches_the_evaluation(evaluate_spies, tmp_path, capsys):
    calls = evaluate_spies
    output = tmp_path / "metrics.json"
    table = {
        "model_name_or_path": ([], lambda c: c["model"]["name"] == "org/model" and c["evaluate"]["dataset"] == "TEST"),
        "model_revision": (["--model_revision", "v2"], lambda c: c["model"]["revision"] == "v2"),
        "tasks": (["--tasks", "depth", "normals"], lambda c: c["model"]["tasks"] == ["depth", "normals"]),
        "task": (["--task", "depth"], lambda c: c["model"]["task"] == "depth"),  # a transformers MODEL's task
        "split": (["--split", "validation"], lambda c: c["evaluate"]["dataset"] == "VALIDATION"),
        "per_device_eval_batch_size": (
            ["--per_device_eval_batch_size", "3"],
            lambda c: c["evaluate"]["batch_size"] == 3,
        ),
        "output_file": (
            ["--output_file", str(output)],
            lambda c: json.loads(output.read_text())["results"] == {"depth": {"abs_err": 0.25}},
        ),
        "test_samples": (["--test_samples", "9"], lambda c: c["load"]["test_samples"] == 9),
        **_data_rows(),
        **_hub_rows("model"),
    }
    _run_rows(evaluate_verb.COMMAND, ["evaluate", "org/model"], table, calls, capsys)
    # only the splits it reads are built: no training split of the embedded benchmark
    main(["evaluate", "org/model"])
    assert calls["load"]["train_samples"] == 0


def test_evaluate_refuses_what_it_cannot_honour_and_the_old_spellings(evaluate_spies, capsys):
    _refusals(
        evaluate_verb.COMMAND,
        ["evaluate", "org/model"],
        capsys,
        {
            "train_samples": ["--train_samples", "5"],
            "max_train_samples": ["--max_train_samples", "5"],
            "max_eval_samples": ["--max_eval_samples", "5"],
            "augment": ["--augment", "false"],
        },
    )
    for given, old, new in [
        ("--revision", "--revision", "--model_revision"),
        ("--batch-size", "--batch_size", "--per_device_eval_batch_size"),  # the dashed old spelling too
        ("--output", "--output", "--output_file"),
    ]:
        assert main(["evaluate", "org/model", given, "x"]) == 2
        assert f"{old} was renamed: use {new}" in capsys.readouterr().err
    assert main(["evaluate", "org/model", "--samples", "5"]) == 2
    assert "--samples was removed: size the embedded benchmark's splits with --test_samples" in capsys.readouterr().err
    assert evaluate_spies == {}  # nothing ran


def test_evaluate_reads_a_config_file_with_command_line_overrides(evaluate_spies, tmp_path, capsys):
    config = tmp_path / "evaluate.yaml"
    config.write_text("model_name_or_path: org/from-yaml\nsplit: validation\nper_device_eval_batch_size: 5\n")
    assert main(["evaluate", "--config", str(config), "--per-device-eval-batch-size", "6"]) == 0, capsys
    assert evaluate_spies["model"]["name"] == "org/from-yaml"
    assert evaluate_spies["evaluate"] == {"dataset": "VALIDATION", "batch_size": 6}


# ---------------------------------------------------------------------------------------------- relationships


@pytest.fixture
def relationships_spies(monkeypatch):
    calls: dict = {}
    real_matrix = hf_simo.analysis.relationship_matrix

    def load_training_data(dataset, **kwargs):
        calls["load"] = {"dataset": dataset, **kwargs}
        return {"validation": "VALIDATION"}

    def simo_batches(dataset, tasks, batch_size, limit=None):
        calls["batches"] = {"dataset": dataset, "tasks": tasks, "batch_size": batch_size, "limit": limit}
        return ["batch"]

    def relationship_inputs(sources, batches, **kwargs):
        calls["inputs"] = {"sources": sources, **kwargs}
        return SimpleNamespace(model="MODEL", base_state={}, task_vectors={}, baselines={})

    def sweep_task_vectors(model, base_state, task_vectors, lambdas, batches, baselines):
        calls["sweep"] = {"lambdas": lambdas, "batches": batches}
        return hand_made_result()

    def relationship_matrix(result, lam=None, **kwargs):
        calls["matrix_lambda"] = lam
        return real_matrix(result, lam, **kwargs)

    monkeypatch.setattr(hf_simo.data.loading, "load_training_data", load_training_data)
    monkeypatch.setattr(hf_simo.analysis.sweep, "simo_batches", simo_batches)
    monkeypatch.setattr(hf_simo.analysis.sweep, "relationship_inputs", relationship_inputs)
    monkeypatch.setattr(hf_simo.analysis.sweep, "sweep_task_vectors", sweep_task_vectors)
    monkeypatch.setattr(hf_simo.analysis, "relationship_matrix", relationship_matrix)
    # the figures are tested in test_analysis_plots.py and test_cli.py; here they would only cost seconds per row
    monkeypatch.setattr(hf_simo.analysis.plots, "plot_relationships", lambda result, path: [])
    monkeypatch.setattr(hf_simo.analysis.plots, "plot_relationship_matrix", lambda matrix, path: [])
    return calls


def test_every_option_of_relationships_reaches_the_sweep(relationships_spies, tmp_path, capsys):
    calls = relationships_spies
    out = tmp_path / "rel"
    grid = ["--lambdas", "0", "0.5", "1", "1.5"]
    table = {
        "task_checkpoints": (
            [],
            lambda c: c["inputs"]["sources"] == {"a": "org/a", "b": "org/b"} and c["sweep"]["batches"] == ["batch"],
        ),
        "lambdas": ([], lambda c: c["sweep"]["lambdas"] == [0.0, 0.5, 1.0, 1.5]),
        "matrix_lambda": (["--matrix_lambda", "0.5"], lambda c: c["matrix_lambda"] == 0.5),
        "output_dir": (
            ["--output_dir", str(tmp_path / "elsewhere")],
            lambda c: (tmp_path / "elsewhere" / "relationships.json").is_file(),
        ),
        "per_device_eval_batch_size": (
            ["--per_device_eval_batch_size", "3"],
            lambda c: c["batches"]["batch_size"] == 3,
        ),
        "base_model": (["--base_model", "org/base"], lambda c: c["inputs"]["base"] == "org/base"),
        "max_relative_distance": (
            ["--max_relative_distance", "0.5"],
            lambda c: c["inputs"]["max_relative_distance"] == 0.5,
        ),
        "allow_distant": (["--allow_distant"], lambda c: c["inputs"]["max_relative_distance"] is None),
        **_data_rows(check_limit=True),
        "token": (["--token", "hf_secret"], lambda c: c["inputs"]["hub"].token == "hf_secret"),
        "cache_dir": (["--cache_dir", "/tmp/hc"], lambda c: c["inputs"]["hub"].cache_dir == "/tmp/hc"),
        "local_files_only": (["--local_files_only"], lambda c: c["inputs"]["hub"].local_files_only is True),
        "allow_pickle": (["--allow_pickle"], lambda c: c["inputs"]["hub"] == HubOptions(allow_pickle=True)),
    }
    base = ["relationships", "--task_checkpoints", "a=org/a", "b=org/b", *grid, "--output_dir", str(out)]
    _run_rows(relationships_verb.COMMAND, base, table, calls, capsys)
    assert calls["load"]["train_samples"] == 0  # only the validation split is built


def test_relationship_inputs_read_every_source_with_the_hub_options(monkeypatch):
    """One level further: the merge and each single-task model (`SimoModel.from_task_source`) get all four."""
    import hf_simo.merging

    calls: dict = {}

    class Stop(Exception):
        pass

    def merge(tasks, base, method, **kwargs):
        calls["merge"] = kwargs["hub"]
        return tiny_model({"depth": {"kind": "depth"}})

    def from_task_source(cls, name_or_path, task, **kwargs):
        calls["single"] = {"name": name_or_path, "task": task, **kwargs}
        raise Stop

    monkeypatch.setattr(hf_simo.merging, "merge", merge)
    monkeypatch.setattr(SimoModel, "from_task_source", classmethod(from_task_source))
    hub = HubOptions(token="hf_secret", cache_dir="/tmp/hc", local_files_only=True, allow_pickle=True)
    with pytest.raises(Stop):
        hf_simo.analysis.sweep.relationship_inputs({"depth": "org/depth@v1"}, [], hub=hub)
    assert calls["merge"] == hub
    assert calls["single"] == {
        "name": "org/depth",
        "task": "depth",
        "revision": "v1",
        "token": "hf_secret",
        "cache_dir": "/tmp/hc",
        "local_files_only": True,
        "allow_pickle": True,
    }


def test_relationships_refuses_what_it_cannot_honour_and_the_old_spellings(relationships_spies, tmp_path, capsys):
    base = ["relationships", "--task_checkpoints", "a=org/a", "--output_dir", str(tmp_path / "rel")]
    _refusals(
        relationships_verb.COMMAND,
        base,
        capsys,
        {
            "train_samples": ["--train_samples", "5"],
            "test_samples": ["--test_samples", "5"],
            "max_train_samples": ["--max_train_samples", "5"],
            "max_eval_samples": ["--max_eval_samples", "5"],
            "augment": ["--augment", "false"],
        },
    )
    for old, new in relationships_verb.RENAMED.items():
        assert main([*base, f"--{old}", "1"]) == 2
        assert f"--{old} was renamed: use {new}" in capsys.readouterr().err
    assert main([*base, "--no-progress"]) == 2  # the dashed old spelling too
    assert "--no_progress was renamed: use --disable_tqdm" in capsys.readouterr().err
    assert main(["relationships", "--output_dir", str(tmp_path / "rel")]) == 1
    assert "--task_checkpoints is required" in capsys.readouterr().err
    assert relationships_spies == {}


# ---------------------------------------------------------------------------------------------- card


def test_every_option_of_card_reaches_the_card(tmp_path, capsys):
    folder = tmp_path / "model"
    tiny_model({"depth": {"kind": "depth"}}).save_pretrained(folder)
    results = tmp_path / "metrics.json"
    results.write_text(json.dumps({"results": {"depth": {"abs_err": 0.125}}}))
    readme = folder / "README.md"
    calls: dict = {}
    table = {
        "folder": ([], lambda c: "hf_simo card" in readme.read_text()),
        "results": (["--results", str(results)], lambda c: "0.125" in readme.read_text()),
        "dataset_name": (["--dataset_name", "Toy Rooms"], lambda c: "Toy Rooms" in readme.read_text()),
        "print": (["--print"], lambda c: not readme.exists() and "<!-- hf_simo card: config" in c["out"]),
        "hub_model_id": (["--hub_model_id", "org/toy"], lambda c: 'from_pretrained("org/toy")' in readme.read_text()),
    }
    assert_every_field_covered(card_verb.COMMAND, table)
    for name, (extra, check) in table.items():
        readme.unlink(missing_ok=True)
        assert main(["card", str(folder), *extra]) == 0, name
        calls["out"] = capsys.readouterr().out
        assert check(calls), name
    for name in card_verb.NOT_APPLICABLE:
        value = ["--hub_revision", "dev"] if name == "hub_revision" else [f"--{name}", "x"]
        value = [f"--{name}"] if name in ("hub_private_repo", "create_pr") else value
        assert main(["card", str(folder), *value]) == 2, name
        assert f"--{name} does not apply to hf-simo card" in capsys.readouterr().err
    assert main(["card", str(folder), "--repo-id", "org/x"]) == 2
    assert "--repo_id was renamed: use --hub_model_id" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- push


@pytest.fixture
def push_spy(monkeypatch):
    calls: dict = {}

    def push_folder_to_hub(folder, repo_id, **kwargs):
        calls["push"] = {"folder": folder, "repo_id": repo_id, **kwargs}
        return hf_simo.publishing.PushResult(repo_id=repo_id, revision=None, files=["config.json"])

    monkeypatch.setattr(hf_simo.publishing, "push_folder_to_hub", push_folder_to_hub)
    return calls


def test_every_option_of_push_reaches_the_push(push_spy, capsys):
    table = {
        "folder": ([], lambda c: c["push"]["folder"] == "my-model" and c["push"]["repo_id"] == "org/name"),
        "hub_model_id": ([], lambda c: c["push"]["repo_id"] == "org/name"),
        "dry_run": (["--dry_run"], lambda c: c["push"]["dry_run"] is True),
        "hub_private_repo": (["--hub_private_repo"], lambda c: c["push"]["private"] is True),
        "hub_revision": (["--hub_revision", "dev"], lambda c: c["push"]["revision"] == "dev"),
        "commit_message": (["--commit_message", "v1"], lambda c: c["push"]["commit_message"] == "v1"),
        "create_pr": (["--create_pr"], lambda c: c["push"]["create_pr"] is True),
        "token": (["--token", "hf_secret"], lambda c: c["push"]["token"] == "hf_secret"),
    }
    _run_rows(push_verb.COMMAND, ["push", "my-model", "org/name"], table, push_spy, capsys)
    _refusals(
        push_verb.COMMAND,
        ["push", "my-model", "org/name"],
        capsys,
        {
            "cache_dir": ["--cache_dir", "x"],
            "local_files_only": ["--local_files_only"],
            "allow_pickle": ["--allow_pickle"],
        },
    )
    for old, new in push_verb.RENAMED.items():
        assert main(["push", "my-model", "org/name", f"--{old}", "x"]) == 2
        assert f"--{old} was renamed: use {new}" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- predict


def test_every_option_of_predict_reaches_the_prediction(monkeypatch, capsys):
    calls: dict = {}

    def predict_to_folder(model, images, output_dir, **kwargs):
        calls["predict"] = {"model": model, "images": images, "output_dir": output_dir, **kwargs}
        return []

    monkeypatch.setattr(hf_simo.predict, "predict_to_folder", predict_to_folder)
    table = {
        "model_name_or_path": ([], lambda c: c["predict"]["model"] == "org/model"),
        "images": ([], lambda c: c["predict"]["images"] == ["a.png", "b.png"]),
        "output_dir": ([], lambda c: c["predict"]["output_dir"] == "out"),
        "tasks": (["--tasks", "depth"], lambda c: c["predict"]["tasks"] == ["depth"]),
        "model_revision": (["--model_revision", "v2"], lambda c: c["predict"]["revision"] == "v2"),
        "device": (["--device", "cpu"], lambda c: c["predict"]["device"] == "cpu"),
        "per_device_eval_batch_size": (
            ["--per_device_eval_batch_size", "3"],
            lambda c: c["predict"]["batch_size"] == 3,
        ),
        "token": (["--token", "hf_secret"], lambda c: c["predict"]["hub"].token == "hf_secret"),
        "cache_dir": (["--cache_dir", "/tmp/hc"], lambda c: c["predict"]["hub"].cache_dir == "/tmp/hc"),
        "local_files_only": (["--local_files_only"], lambda c: c["predict"]["hub"].local_files_only is True),
        "allow_pickle": (["--allow_pickle"], lambda c: c["predict"]["hub"].allow_pickle is True),
    }
    _run_rows(predict_verb.COMMAND, ["predict", "org/model", "a.png", "b.png", "--output_dir", "out"], table, calls,
              capsys)  # fmt: skip
    for old, new in predict_verb.RENAMED.items():
        assert main(["predict", "org/model", "a.png", "--output_dir", "out", f"--{old}", "1"]) == 2
        assert f"--{old} was renamed: use {new}" in capsys.readouterr().err


def test_predict_passes_the_revision_and_hub_options_to_the_model_read(monkeypatch, tmp_path):
    """One level further: `predict_to_folder` hands them to `SimoModel.from_pretrained`."""
    calls = {}

    class Stop(Exception):
        pass

    def from_pretrained(cls, name, **kwargs):
        calls.update(name=name, **kwargs)
        raise Stop

    monkeypatch.setattr(SimoModel, "from_pretrained", classmethod(from_pretrained))
    hub = HubOptions(token="hf_secret", cache_dir="/tmp/hc", local_files_only=True, allow_pickle=True)
    with pytest.raises(Stop):
        hf_simo.predict.predict_to_folder("org/model", ["a.png"], tmp_path, revision="v2", hub=hub)
    assert calls == {
        "name": "org/model",
        "revision": "v2",
        "token": "hf_secret",
        "cache_dir": "/tmp/hc",
        "local_files_only": True,
        "allow_pickle": True,
    }


# ---------------------------------------------------------------------------------------------- demo


# demo options used after the training stages (merging, analysis): option -> (words, check on what the spies of
# `test_the_demo_options_after_training_reach_their_stages` recorded); the re-alignment ones are checked below
DEMO_AFTER_TRAINING = {
    "merge_methods": (["--merge_methods", "ties"], lambda c: [m["method"] for m in c["merge"]] == ["ties"]),
    "ties_density": (
        ["--ties_density", "0.3"],
        lambda c: [m["options"] for m in c["merge"] if m["method"] == "ties"] == [{"density": 0.3}],
    ),
    "alpha_grid": (
        ["--alpha_grid", "0.25", "0.75"],
        lambda c: (
            c["merge"]
            and all(list(m["alphas"]) == [0.25, 0.75] for m in c["merge"])
            and list(c["combination_alphas"]) == [0.25, 0.75]  # Figure 1's α search too
        ),
    ),
    "relationship_lambdas": (["--relationship_lambdas", "0", "0.5"], lambda c: list(c["lambdas"]) == [0.0, 0.5]),
    "coefficient_steps": (["--coefficient_steps", "5"], lambda c: c["coefficient_steps"] == 5),
    "qualitative_samples": (["--qualitative_samples", "2"], lambda c: c["qualitative_images"] == 2),
}


def test_the_demo_forwards_its_options_to_the_training_stages(monkeypatch, tmp_path, capsys):
    import hf_simo.training
    from hf_simo.cli import demo as demo_verb
    from hf_simo.demo.arguments import DEMO_FORWARDS

    calls: dict = {}

    class Stop(Exception):
        pass

    def run_finetune(finetune, data, run):
        calls.setdefault("finetune", []).append((finetune, data, run))
        return tmp_path / f"ft-{finetune.task}"

    def run_mtl(mtl, data, run):
        calls["mtl"] = (mtl, data, run)
        return tmp_path / "mtl"

    def load_data(data, **kwargs):
        calls["load"] = (data, kwargs)
        raise Stop  # the stages after training are the end-to-end test's (test_demo.py)

    monkeypatch.setattr(hf_simo.training, "run_finetune", run_finetune)
    monkeypatch.setattr(hf_simo.training, "run_mtl", run_mtl)
    monkeypatch.setattr(hf_simo.training, "configure_threads", lambda n: calls.__setitem__("threads", n))
    monkeypatch.setattr(hf_simo.data, "load_data", load_data)

    def finetunes(c):
        return [f for f, _, _ in c["finetune"]]

    out = tmp_path / "demo"
    table = {
        "output_dir": ([], lambda c: [r.output_dir for _, _, r in c["finetune"]][0].startswith(str(out))),
        "dataset": (
            ["--dataset", "taskonomy"],
            lambda c: (
                c["mtl"][1].dataset == "taskonomy"
                and len(c["finetune"]) == 5
                and {f.head for f in finetunes(c)} == {"dpt"} == {c["mtl"][0].head}  # the preset's heads
                and json.loads(c["mtl"][0].head_options) == {"fusion_hidden_size": 64}
                and c["mtl"][0].stage2_epochs == 5 * 3  # the five single-task runs' stage 2 together
            ),
        ),
        "head": (
            ["--head", "dpt"],
            lambda c: (
                {f.head for f in finetunes(c)} == {"dpt"} == {c["mtl"][0].head}
                and {f.head_options for f in finetunes(c)} == {c["mtl"][0].head_options}
                and json.loads(c["mtl"][0].head_options) == {"fusion_hidden_size": 64}
                and c["mtl"][0].stage2_epochs == 3 * 3
            ),
        ),
        "head_options": (
            ["--head", "dpt", "--head_options", '{"fusion_hidden_size": 32}'],
            lambda c: (
                {json.loads(f.head_options)["fusion_hidden_size"] for f in finetunes(c)} == {32}
                and json.loads(c["mtl"][0].head_options) == {"fusion_hidden_size": 32}
            ),
        ),
        "model_name_or_path": (
            ["--model_name_or_path", "org/enc"],
            lambda c: (
                {f.model_name_or_path for f in finetunes(c)} == {"org/enc"}
                and c["mtl"][0].model_name_or_path == "org/enc"
            ),
        ),
        "pretrain_encoder": (
            ["--pretrain_encoder"],
            lambda c: all(f.pretrain_encoder for f in finetunes(c)) and c["mtl"][0].pretrain_encoder,
        ),
        "image_size": (["--image_size", "48"], lambda c: c["mtl"][1].image_size == 48),
        "train_samples": (["--train_samples", "99"], lambda c: c["mtl"][1].train_samples == 99),
        "validation_samples": (["--validation_samples", "33"], lambda c: c["mtl"][1].validation_samples == 33),
        "test_samples": (["--test_samples", "44"], lambda c: c["load"][1]["test_samples"] == 44),
        "stage1_epochs": (
            ["--stage1_epochs", "4"],
            lambda c: {f.stage1_epochs for f in finetunes(c)} == {4} and c["mtl"][0].stage1_epochs == 4,
        ),
        "finetune_epochs": (["--finetune_epochs", "6"], lambda c: {f.stage2_epochs for f in finetunes(c)} == {6}),
        "mtl_epochs": (
            ["--mtl_epochs", "7", "--finetune_epochs", "2"],
            lambda c: c["mtl"][0].stage2_epochs == 7 and {f.head for f in finetunes(c)} == {"linear"},
        ),
        "stage2_patience": (
            ["--stage2_patience", "8"],
            lambda c: {f.stage2_patience for f in finetunes(c)} == {8} and c["mtl"][0].stage2_patience == 8,
        ),
        "seed": (["--seed", "3"], lambda c: c["mtl"][2].seed == 3 and c["mtl"][1].data_seed == 3),
        "num_threads": (["--num_threads", "1"], lambda c: c["threads"] == 1 and c["mtl"][2].num_threads == 1),
    }
    fields = {f.name for f in dataclasses.fields(demo_verb.COMMAND.arguments[0])}
    realign = {"realign_epochs", "realign_learning_rate", "head_epochs", "rank"}  # checked below
    assert fields == set(table) | realign | set(DEMO_AFTER_TRAINING)  # a new demo option must be in one of them
    assert set(DEMO_FORWARDS) <= fields
    for name, (extra, check) in table.items():
        calls.clear()
        with pytest.raises(Stop):
            demo_verb.COMMAND.main(["--output_dir", str(out), *extra])
        assert check(calls), (name, calls)
    # the re-alignment stages' settings, built from the same table
    from hf_simo.demo.arguments import DemoArguments, forwarded
    from hf_simo.realign import RealignmentSettings

    args = DemoArguments(realign_epochs=7, realign_learning_rate=0.01, head_epochs=9, rank=4, seed=2)
    settings = RealignmentSettings(mode="head", **forwarded(args, "RealignmentSettings"))
    assert (settings.num_epochs, settings.learning_rate, settings.head_epochs, settings.rank, settings.seed) == (
        7,
        0.01,
        9,
        4,
        2,
    )
    for old, new in demo_verb.COMMAND.renamed.items():
        assert main(["demo", f"--{old}", "1"]) == 2
        assert f"--{old} was renamed: use {new}" in capsys.readouterr().err


class FakeModel:
    """What `run_demo` asks of a model after training, without weights: parameters, an encoder, predictions."""

    def __init__(self):
        self.config = SimpleNamespace()
        self.dinov2 = SimpleNamespace(state_dict=dict)

    def eval(self):
        return self

    def parameters(self):
        return iter([torch.zeros(3)])

    def __call__(self, pixels):
        return SimpleNamespace(predictions={t: pixels for t in ("segmentation", "depth", "normals")})


def run_demo_after_training(monkeypatch, tmp_path, *words) -> dict:
    """`hf-simo demo` with every stage replaced by a spy where `run_demo` looks it up: what the merges, the sweep,
    the coefficient learning and the qualitative grid received (and whether bars were off during the merges)."""
    import hf_simo.analysis.coefficients
    import hf_simo.analysis.combinations
    import hf_simo.analysis.qualitative
    import hf_simo.cards
    import hf_simo.demo.run
    import hf_simo.merging
    import hf_simo.metrics
    import hf_simo.realign
    import hf_simo.training
    from hf_simo.cli import demo as demo_verb
    from hf_simo.utils.logging import are_progress_bars_disabled

    calls: dict = {"merge": []}
    tasks = ("segmentation", "depth", "normals")
    batch = {"pixel_values": torch.zeros(4, 3, 8, 8), "labels": {t: torch.zeros(4, 8, 8) for t in tasks}}

    def search_and_merge(sources, **kwargs):
        calls["merge"].append(kwargs)
        calls["bars_disabled"] = are_progress_bars_disabled()
        return SimpleNamespace(model=FakeModel(), alpha=0.5, search_table="| α |")

    def realign(model, dataset, settings, **kwargs):
        record = SimpleNamespace(steps=1, trainable_parameters=10, samples=4, to_dict=dict)
        return FakeModel(), record, None

    def sweep_task_vectors(model, base_state, vectors, lambdas, batches, baselines):
        calls["lambdas"] = lambdas
        return SimpleNamespace(save=lambda path: None)

    def learn_layer_coefficients(model, base_state, finetuned, batches, steps):
        calls["coefficient_steps"] = steps
        return SimpleNamespace(coefficients=[], group_names=[], blocks=list)

    def merge_combinations(model, base_state, vectors, alphas, validation, val_baselines, test, test_baselines):
        calls["combination_alphas"] = alphas
        return SimpleNamespace(save=lambda path: None, to_markdown=lambda: "| k |")

    def build_qualitative_grid(images, labels, predictions, specs):
        calls["qualitative_images"] = len(images)
        return None

    stubs = {
        hf_simo.training: {
            "run_finetune": lambda finetune, data, run: tmp_path / f"ft-{finetune.task}",
            "run_mtl": lambda mtl, data, run: tmp_path / "mtl",
            "configure_threads": lambda n: None,
            "read_summary": lambda folder: {},
        },
        hf_simo.data: {"load_data": lambda data, **kwargs: {"validation": [batch], "test": [batch]}},
        hf_simo.evaluation: {
            "simo_batches": lambda dataset, tasks, size: [batch],
            "evaluate": lambda model, batches, tasks=None: {t: {"abs_err": 1.0} for t in tasks or ("depth",)},
            "primary_values": lambda model, values: {t: 1.0 for t in values},
        },
        hf_simo.merging: {"search_and_merge": search_and_merge},
        hf_simo.realign: {"realign": realign},
        hf_simo.metrics: {"render_table": lambda rows, **kwargs: "| table |"},
        hf_simo.cards: {"write_model_card": lambda folder, **kwargs: None},
        hf_simo.demo.run: {
            "_task_vectors": lambda singles, mtl: SimpleNamespace(to_markdown=str, to_dict=dict),
            "_save_stage": lambda *args: None,
            "_specs": lambda singles: {t: SimpleNamespace(metric="abs_err") for t in tasks},
        },
        hf_simo.analysis: {
            "relationship_inputs": lambda sources, batches, **kw: SimpleNamespace(
                model=None, base_state={}, task_vectors={}, baselines={}
            ),
            "sweep_task_vectors": sweep_task_vectors,
            "relationship_matrix": lambda relations, scale: SimpleNamespace(to_markdown=str),
            "describe_relationships": lambda relations, scale: "report",
        },
        hf_simo.analysis.combinations: {"merge_combinations": merge_combinations},
        hf_simo.analysis.coefficients: {
            "encoder_state": lambda model: {},
            "learn_layer_coefficients": learn_layer_coefficients,
        },
        hf_simo.analysis.plots: {
            "plot_relationships": lambda *args: [],
            "plot_relationship_matrix": lambda *args: [],
            "plot_layer_coefficients": lambda *args: [],
            "plot_combinations": lambda *args, **kwargs: [],
        },
        hf_simo.analysis.qualitative: {
            "collect_predictions": lambda models, pixels: {},
            "build_qualitative_grid": build_qualitative_grid,
            "plot_qualitative": lambda grid, path: [],
        },
    }
    for module, names in stubs.items():
        for name, stub in names.items():
            assert hasattr(module, name), (module.__name__, name)  # a spy must replace a name run_demo uses
            monkeypatch.setattr(module, name, stub)
    monkeypatch.setattr(SimoModel, "from_pretrained", classmethod(lambda cls, path, **kwargs: FakeModel()))
    demo_verb.COMMAND.main(["--output_dir", str(tmp_path / "demo"), *words])
    return calls


def test_the_demo_options_after_training_reach_their_stages(monkeypatch, tmp_path):
    # the environment must not decide whether bars show (the one switch is what is tested)
    monkeypatch.setattr(sys.modules["huggingface_hub.utils.tqdm"], "HF_HUB_DISABLE_PROGRESS_BARS", None)
    words = [word for values, _ in DEMO_AFTER_TRAINING.values() for word in values]
    calls = run_demo_after_training(monkeypatch, tmp_path / "set", *words, "--disable_tqdm")
    assert [name for name, (_, check) in DEMO_AFTER_TRAINING.items() if not check(calls)] == [], calls
    assert calls["bars_disabled"]  # --disable_tqdm is hf_simo.utils.logging's switch during the run
    # positive control: with the defaults, every check fails and the bars are on
    calls = run_demo_after_training(monkeypatch, tmp_path / "defaults")
    assert [name for name, (_, check) in DEMO_AFTER_TRAINING.items() if check(calls)] == [], calls
    assert len(calls["merge"]) == 2 and not calls["bars_disabled"]
