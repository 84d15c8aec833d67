"""The re-alignment job end to end on tiny data: recipes/realign.py in both modes, its outputs and its bad inputs."""

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from helpers.processes import PausedProcess
from helpers.recipes import RECIPES
from helpers.recipes import load_recipe as load_recipes_module
from hf_simo import SimoModel
from hf_simo.data import DataArguments
from hf_simo.testing_utils import save_tiny_dataset, save_tiny_encoder
from hf_simo.training.arguments import FinetuneArguments, RunArguments
from hf_simo.training.finetune import run_finetune


RECIPE = RECIPES / "realign.py"


def load_recipe():
    return load_recipes_module("realign")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Three single-task checkpoints fine-tuned (briefly) from one tiny encoder, and a dataset with a test split."""
    root = tmp_path_factory.mktemp("realign")
    dataset = save_tiny_dataset(root / "data", train=32, validation=20, test=12)
    encoder = save_tiny_encoder(root / "encoder")
    sources = {}
    for task in ("segmentation", "depth", "normals"):
        args = FinetuneArguments(
            model_name_or_path=str(encoder), task=task, stage1_epochs=1, stage2_epochs=2, stage2_learning_rate=5e-3
        )
        run = RunArguments(output_dir=str(root / task), per_device_train_batch_size=8)
        sources[task] = str(run_finetune(args, DataArguments(dataset=str(dataset)), run))
    return {"dataset": str(dataset), "encoder": str(encoder), "sources": sources, "root": root}


def _argv(checkpoints, output_dir, *extra):
    trains = ("--mode", "none") not in zip(extra, extra[1:])  # --mode none refuses training options
    return [
        "--task_checkpoints", *(f"{t}={p}" for t, p in checkpoints["sources"].items()),
        "--dataset", checkpoints["dataset"],
        "--output_dir", str(output_dir),
        "--alpha_grid", "0.3", "1.0",
        "--num_train_epochs", "3",
        "--head_epochs", "3",
        *(["--per_device_train_batch_size", "8"] if trains else []),
        "--per_device_eval_batch_size", "8",
        "--disable_tqdm",
        *extra,
    ]  # fmt: skip


def test_representation_realignment_end_to_end(checkpoints, tmp_path):
    outcome = load_recipe().main(_argv(checkpoints, tmp_path / "repr", "--rank", "4"))
    folder = tmp_path / "repr" / "model"
    assert outcome.model_dir == folder
    model = SimoModel.from_pretrained(folder)  # a plain SimoModel: adapters folded, no PEFT needed
    assert model.task_names == ["segmentation", "depth", "normals"]
    assert model.config.block_adapter == "linear"
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if n.endswith("adapter_slot.weight"))
    realignment = model.config.realignment
    assert realignment["mode"] == "representation" and realignment["rank"] == 4
    assert realignment["samples"] == 16 and realignment["heldout_samples"] == 4  # validation only, 80/20
    assert realignment["adapter_parameters"] == 2 * 2 * 32 * 4  # 2 blocks × (A + B) × hidden × rank
    assert realignment["trainable_parameters"] > realignment["adapter_parameters"]  # + the heads
    assert realignment["steps"] == 2 * realignment["epochs"] and 1 <= realignment["epochs"] <= 3  # 16 samples, batch 8
    assert model.config.merge["method"] == "task_arithmetic" and model.config.merge["alpha"] in (0.3, 1.0)
    assert (tmp_path / "repr" / "adapter" / "adapter_model.safetensors").is_file()
    results = json.loads((tmp_path / "repr" / "results.json").read_text())
    assert list(results["results"]) == ["Single-task", "TA", "TA + representation re-align"]
    table = (tmp_path / "repr" / "results.md").read_text()
    assert "| TA + representation re-align |" in table and "Δ ↑" in table
    card = ModelCard.load(folder / "README.md")
    assert card.data.eval_results and "re-align" in card.text.lower()
    assert not (tmp_path / "repr" / "checkpoints").exists()


def test_head_realignment_changes_only_the_heads(checkpoints, tmp_path):
    outcome = load_recipe().main(_argv(checkpoints, tmp_path / "head", "--mode", "head", "--alpha", "0.5"))
    model = SimoModel.from_pretrained(outcome.model_dir)
    assert model.config.block_adapter is None
    assert model.config.realignment["mode"] == "head"
    assert model.config.merge["alpha"] == 0.5  # fixed α: no search
    best_epoch = model.config.realignment["best_epoch"]
    assert any(epoch > 0 for epoch in best_epoch.values())
    for task, source in checkpoints["sources"].items():  # a head moves iff an epoch beat it on the held-out part
        original = SimoModel.from_pretrained(source).heads[task].classifier.weight
        changed = not torch.equal(model.heads[task].classifier.weight, original)
        assert changed == (best_epoch[task] > 0), task
    single = SimoModel.from_pretrained(checkpoints["sources"]["depth"])
    assert model.config.realignment["steps"] == 2 * model.config.realignment["epochs"]  # 16 samples, batch 8
    assert single.config.block_adapter is None
    assert list(outcome.results) == ["Single-task", "TA", "TA + head re-align"]
    assert "feature_cache_dtype" not in model.config.realignment  # the float32 default records nothing new
    assert not (tmp_path / "head" / "feature_cache").exists()  # the cache is removed once the heads are trained


def test_head_realignment_trains_on_a_mapped_cache_of_the_storage_dtype(checkpoints, tmp_path, monkeypatch):
    import hf_simo.realign.steps
    from hf_simo.realign.cache_files import read_header

    seen = []
    original = hf_simo.realign.steps.compute_feature_cache

    def compute_feature_cache(model, batches, **kwargs):
        cache = original(model, batches, **kwargs)
        path = tmp_path / "head" / "feature_cache" / f"features-{cache.key}.safetensors"
        header, _ = read_header(path)  # on disk, in the run's folder, with the storage dtype asked for
        seen.append(
            ({f.dtype for f in cache.features.values()}, {v["dtype"] for k, v in header.items() if "features." in k})
        )
        return cache

    monkeypatch.setattr(hf_simo.realign.steps, "compute_feature_cache", compute_feature_cache)
    argv = _argv(
        checkpoints, tmp_path / "head", "--mode", "head", "--alpha", "0.5", "--feature_cache_dtype", "bfloat16"
    )
    outcome = load_recipe().main(argv)
    assert seen == [({torch.bfloat16}, {"BF16"})]
    assert SimoModel.from_pretrained(outcome.model_dir).config.realignment["feature_cache_dtype"] == "bfloat16"
    with pytest.raises(SystemExit, match="--feature_cache_dtype bfloat16 applies to --mode head"):
        load_recipe().main(_argv(checkpoints, tmp_path / "repr", "--feature_cache_dtype", "bfloat16"))
    with pytest.raises(SystemExit, match="--feature_cache_dtype must be one of float32, bfloat16, float16"):
        load_recipe().main(_argv(checkpoints, tmp_path / "bad", "--mode", "head", "--feature_cache_dtype", "int8"))


def test_bad_inputs_are_one_line_errors(checkpoints, tmp_path):
    recipe = load_recipe()
    with pytest.raises(SystemExit, match=r"task\(s\) \['edges'\] are not in dataset"):
        recipe.main(
            _argv(checkpoints, tmp_path / "x", "--task_checkpoints", f"edges={checkpoints['sources']['depth']}")
        )
    with pytest.raises(SystemExit, match="--rank must be a positive integer"):
        recipe.main(_argv(checkpoints, tmp_path / "y", "--rank", "0"))
    with pytest.raises(SystemExit, match="--rank 64 is larger than the encoder's hidden size 32"):
        recipe.main(_argv(checkpoints, tmp_path / "y", "--rank", "64"))
    assert not (tmp_path / "y" / "model").exists()
    with pytest.raises(SystemExit, match="--mode must be"):
        recipe.main(_argv(checkpoints, tmp_path / "z", "--mode", "adapters"))
    missing_test = save_tiny_dataset(tmp_path / "no_test", train=8, validation=8)
    with pytest.raises(SystemExit, match="needs a 'test' split"):
        recipe.main(_argv(checkpoints, tmp_path / "w", "--dataset", str(missing_test)))
    (tmp_path / "done" / "model").mkdir(parents=True)
    with pytest.raises(SystemExit, match="already exists; pass --overwrite_output_dir"):
        recipe.main(_argv(checkpoints, tmp_path / "done"))


def test_a_base_the_checkpoints_were_not_fine_tuned_from_is_refused_unless_allowed(checkpoints, tmp_path):
    recipe = load_recipe()
    stranger = save_tiny_encoder(tmp_path / "stranger", seed=99)
    argv = _argv(checkpoints, tmp_path / "distant", "--base_model", str(stranger), "--mode", "none", "--alpha", "0.5")
    with pytest.raises(SystemExit, match=r"does not look fine-tuned from the base.*--allow-distant"):
        recipe.main(argv)
    assert not (tmp_path / "distant" / "model").exists()
    with pytest.warns(UserWarning, match="may not be fine-tuned from this base"):
        outcome = recipe.main([*argv, "--allow-distant"])
    assert SimoModel.from_pretrained(outcome.model_dir).config.merge["alpha"] == 0.5


# ------------------------------------------------------------------------------------ determinism, resume, atomicity


def _realign_argv(checkpoints, output_dir, *extra):
    return _argv(checkpoints, output_dir, "--rank", "4", "--alpha", "0.5", *extra)


def _weights(output_dir) -> bytes:
    return (Path(output_dir) / "model" / "model.safetensors").read_bytes()


@pytest.fixture(scope="module")
def reference(checkpoints, tmp_path_factory):
    """One uninterrupted representation re-alignment (3 epochs of 2 steps), from a global RNG state of its own."""
    output_dir = tmp_path_factory.mktemp("reference") / "run"
    torch.manual_seed(1234)
    load_recipe().main(_realign_argv(checkpoints, output_dir))
    return output_dir


def test_identical_representation_realignment_runs_are_bitwise_identical(checkpoints, reference, tmp_path):
    torch.manual_seed(98765)  # another global RNG state, as in a fresh process (torch seeds each one at random)
    load_recipe().main(_realign_argv(checkpoints, tmp_path / "twin"))
    assert _weights(tmp_path / "twin") == _weights(reference)
    adapter = "adapter/adapter_model.safetensors"
    assert (tmp_path / "twin" / adapter).read_bytes() == (reference / adapter).read_bytes()


def test_a_representation_realignment_killed_mid_training_resumes_to_the_uninterrupted_result(
    checkpoints, reference, tmp_path
):
    from hf_simo.training import latest_checkpoint

    output_dir = tmp_path / "killed"
    argv = _realign_argv(checkpoints, output_dir, "--save_steps", "2")
    run = PausedProcess([str(RECIPE), *argv], "train:step-3", tmp_path)  # after step 3; the checkpoint is step 2's
    run.kill()
    assert not (output_dir / "model").exists()
    assert json.loads((latest_checkpoint(output_dir) / "trainer_state.json").read_text())["global_step"] == 2
    load_recipe().main(argv)
    assert _weights(output_dir) == _weights(reference)
    assert not (output_dir / "checkpoints").exists() and not (output_dir / "best").exists()


def test_stop_after_steps_resumes_exactly_and_another_runs_state_is_refused(checkpoints, reference, tmp_path):
    from hf_simo.training import latest_checkpoint

    recipe = load_recipe()
    output_dir = tmp_path / "stopped"
    outcome = recipe.main(_realign_argv(checkpoints, output_dir, "--save_steps", "1", "--stop_after_steps", "3"))
    assert outcome.interrupted and not (output_dir / "model").exists()
    checkpoint = latest_checkpoint(output_dir)
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == 3
    with pytest.raises(SystemExit, match=r"holds a different run \(learning_rate: 0.001 -> 0.0005\)"):
        recipe.main(_realign_argv(checkpoints, output_dir, "--learning_rate", "5e-4"))
    assert latest_checkpoint(output_dir) == checkpoint  # refused: untouched
    recipe.main(_realign_argv(checkpoints, output_dir))  # the same run, without the stop: resumes
    assert _weights(output_dir) == _weights(reference)
    with pytest.raises(SystemExit, match="--stop_after_steps applies to --mode representation"):
        recipe.main(_argv(checkpoints, tmp_path / "head", "--mode", "head", "--stop_after_steps", "2"))


def test_results_survive_a_kill_while_they_are_rewritten(checkpoints, tmp_path):
    from hf_simo.atomic import temporaries

    output_dir = tmp_path / "none"
    argv = _argv(checkpoints, output_dir, "--mode", "none", "--alpha", "0.5")
    load_recipe().main(argv)
    before = {name: (output_dir / name).read_bytes() for name in ("results.json", "results.md", "model/config.json")}
    rerun = [*argv, "--overwrite_output_dir", "--alpha", "0.3"]
    run = PausedProcess([str(RECIPE), *rerun], "atomic:file-written:results.json", tmp_path)
    [temporary] = temporaries(output_dir / "results.json", "tmp")
    assert json.loads(temporary.read_text())["record"]["alpha"] == 0.3  # the new results, complete, not in place
    run.kill()
    assert {name: (output_dir / name).read_bytes() for name in before} == before
    load_recipe().main(rerun)
    assert json.loads((output_dir / "results.json").read_text())["record"]["alpha"] == 0.3
    assert temporaries(output_dir / "results.json", "tmp") == []
    assert (
        sorted(p.name for p in output_dir.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")) == []
    )


def test_the_realign_verb_reports_typos_and_bad_values(capsys):
    from hf_simo.cli import main

    assert main(["realign", "--rnk", "4"]) == 2
    assert "--rnk (did you mean --rank?)" in capsys.readouterr().err
    assert main(["realign", "--mode", "adapters"]) == 1
    assert "--mode must be head, representation or none" in capsys.readouterr().err
