"""The encoder shipped with the package: it loads through `from_pretrained`, carries its provenance and loss curve,
is what the recipes fine-tune from by default, and is made from a pre-training run by `recipes/ship_encoder.py`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import Dinov2Model

from hf_simo import SimoModel
from hf_simo.encoders import shipped_encoder_digest, shipped_encoder_path, shipped_encoder_provenance
from hf_simo.testing_utils import save_tiny_dataset
from hf_simo.training.run import RUN_ARGS_NAME, read_summary
from hf_simo.weights import canonical_key


RECIPES = Path(__file__).resolve().parents[1] / "recipes"
TINY_ENCODER = ["--hidden_size", "32", "--num_hidden_layers", "2", "--num_attention_heads", "2", "--mlp_ratio", "2"]


def load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pretrain(output_dir: Path, *extra: str) -> Path:
    return load_recipe("pretrain_encoder").main([
        "--dataset", "pretraining", "--train_samples", "48", "--validation_samples", "8", "--image_size", "32",
        *TINY_ENCODER, "--num_train_epochs", "2", "--per_device_train_batch_size", "8", "--logging_steps", "2",
        "--output_dir", str(output_dir), "--disable_tqdm", *extra,
    ])  # fmt: skip


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    pretrain(root / "run")
    return root / "run"


# ---------------------------------------------------------------------------------------------- what ships


def test_shipped_encoder_loads_with_from_pretrained_and_fits_the_budget():
    folder = shipped_encoder_path()
    encoder = Dinov2Model.from_pretrained(folder)
    assert next(encoder.parameters()).dtype == torch.float32  # computes in float32 whatever the storage dtype
    assert (encoder.config.patch_size, encoder.config.image_size) == (8, 64)
    assert (folder / "model.safetensors").stat().st_size <= 10e6
    stored = load_file(str(folder / "model.safetensors"))
    loaded = encoder.state_dict()
    assert len(stored) == len(loaded)
    for key, value in stored.items():  # transformers 5 saves DINOv2's legacy tensor names
        assert torch.equal(loaded[canonical_key(key)], value.float()), key  # exact, not re-rounded
    model = SimoModel.from_backbone(folder, tasks={"depth": {"kind": "depth"}})
    assert model.config.base_model_name_or_path == str(folder)
    with torch.no_grad():
        out = model(pixel_values=torch.randn(1, 3, 64, 64)).predictions["depth"]
    assert out.shape == (1, 1, 64, 64) and torch.isfinite(out).all()


def test_shipped_encoder_records_how_it_was_made():
    provenance = shipped_encoder_provenance()
    assert provenance["recipe"] == "recipes/pretrain_encoder.py"
    arguments = provenance["arguments"]
    assert arguments["recipe"] == "pretrain_encoder" and arguments["dataset"] == "pretraining"
    assert arguments["data_seed"] == provenance["data"]["data_seed"]
    assert len(provenance["source_revision"]["git_commit"]) == 40
    assert provenance["budget"]["global_step"] > 0 and provenance["parameters"] > 0
    if provenance["provisional"]:
        assert "provisional" in provenance["note"].lower()
    folder = shipped_encoder_path()
    records = [json.loads(line) for line in (folder / "loss_curve.jsonl").read_text().splitlines()]
    assert any("eval_loss" in r for r in records) and any("train_loss" in r for r in records)
    assert (folder / "loss_curve.png").stat().st_size > 10_000
    config = json.loads((folder / "config.json").read_text())
    assert config["hidden_size"] == arguments["hidden_size"]
    assert config["num_hidden_layers"] == arguments["num_hidden_layers"]


def test_a_missing_shipped_encoder_is_a_clear_error(tmp_path, monkeypatch):
    import hf_simo.encoders as encoders
    from hf_simo.errors import SimoError

    monkeypatch.setattr("hf_simo.encoders.shipped._ROOT", tmp_path)  # where shipped_encoder_path looks it up
    with pytest.raises(encoders.ShippedEncoderMissingError, match="--pretrain_encoder") as error:
        encoders.shipped_encoder_path()
    assert isinstance(error.value, SimoError) and isinstance(error.value, FileNotFoundError)  # one line in the CLI


# ---------------------------------------------------------------------------------------------- the recipes' default


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return str(save_tiny_dataset(tmp_path_factory.mktemp("data") / "data", train=16, validation=8))


def tiny_finetune(data: str, output_dir: Path, *extra: str) -> list[str]:
    return [
        "--dataset", data, "--output_dir", str(output_dir), "--task", "depth",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8",
        "--stage1_epochs", "1", "--stage2_epochs", "1", "--disable_tqdm", *extra,
    ]  # fmt: skip


def test_recipes_fine_tune_from_the_shipped_encoder_by_default(tiny_data, tmp_path):
    folder = load_recipe("finetune").main(tiny_finetune(tiny_data, tmp_path / "run"))
    model = SimoModel.from_pretrained(folder)
    assert model.config.base_model_name_or_path == str(shipped_encoder_path())
    run_args = json.loads((tmp_path / "run" / RUN_ARGS_NAME).read_text())
    assert run_args["shipped_encoder"] == shipped_encoder_digest() and run_args["pretrain_encoder"] is False
    assert read_summary(tmp_path / "run")["encoder_drift"]["tau_ratio"] > 0


def test_encoder_options_that_contradict_each_other_are_refused(tiny_data, tmp_path):
    finetune = load_recipe("finetune")
    with pytest.raises(SystemExit, match="exclude each other"):
        finetune.main(tiny_finetune(tiny_data, tmp_path / "a", "--model_name_or_path", "x", "--pretrain_encoder"))
    with pytest.raises(SystemExit, match="--encoder_config configures --pretrain_encoder"):
        finetune.main(tiny_finetune(tiny_data, tmp_path / "b", "--encoder_config", "enc.yaml"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ---------------------------------------------------------------------------------------------- making it


def test_pretraining_records_its_commit_and_loss_curve(pretrained_run):
    revision = json.loads((pretrained_run / "source_revision.json").read_text())
    assert len(revision["git_commit"]) == 40 and isinstance(revision["dirty"], bool)
    summary = read_summary(pretrained_run)
    assert summary["source_revision"] == revision and summary["global_step"] == 2 * 48 // 8
    records = [json.loads(line) for line in (pretrained_run / "loss_curve.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval_loss" in r]
    assert [r["step"] for r in evals] == [6, 12] and [r["eval_loss"] for r in evals] == [
        h["eval_loss"] for h in summary["history"]
    ]
    assert [r["step"] for r in records if "train_loss" in r] == list(range(2, 13, 2))
    assert (pretrained_run / "loss_curve.png").stat().st_size > 10_000


def test_ship_encoder_writes_a_loadable_folder_with_provenance(pretrained_run, tmp_path):
    destination = tmp_path / "shipped"
    written = load_recipe("ship_encoder").main(
        ["--run_dir", str(pretrained_run), "--destination", str(destination), "--provisional", "--note", "provisional"]
    )
    assert written == destination
    assert {p.name for p in destination.iterdir()} == {
        "config.json", "model.safetensors", "provenance.json", "loss_curve.jsonl", "loss_curve.png",
    }  # fmt: skip
    shipped = Dinov2Model.from_pretrained(destination).state_dict()
    trained = Dinov2Model.from_pretrained(pretrained_run / "model").state_dict()
    assert all(torch.equal(shipped[k], trained[k]) for k in trained)  # float32: it fits in 10 MB
    provenance = json.loads((destination / "provenance.json").read_text())
    assert provenance["arguments"] == json.loads((pretrained_run / RUN_ARGS_NAME).read_text())
    assert provenance["budget"]["state"] == "completed" and provenance["storage_dtype"] == "float32"
    assert provenance["provisional"] is True and provenance["launch_arguments"]["num_threads"] is None


def test_ship_encoder_stores_bfloat16_when_float32_is_too_large(pretrained_run, tmp_path):
    destination = tmp_path / "bf16"
    load_recipe("ship_encoder").main(
        ["--run_dir", str(pretrained_run), "--destination", str(destination), "--max_megabytes", "0.05"]
    )
    assert {v.dtype for v in load_file(str(destination / "model.safetensors")).values()} == {torch.bfloat16}
    shipped = Dinov2Model.from_pretrained(destination)
    assert next(shipped.parameters()).dtype == torch.float32
    trained = Dinov2Model.from_pretrained(pretrained_run / "model").state_dict()
    for key, value in shipped.state_dict().items():
        assert torch.equal(value, trained[key].to(torch.bfloat16).float()), key
    with pytest.raises(SystemExit, match="even in bfloat16"):
        load_recipe("ship_encoder").main(
            ["--run_dir", str(pretrained_run), "--destination", str(tmp_path / "no"), "--max_megabytes", "0.01"]
        )
    assert not (tmp_path / "no").exists()


def test_a_run_stopped_at_a_plateau_ships_its_newest_checkpoint(tmp_path):
    run = tmp_path / "stopped"
    pretrain(run, "--stop_after_steps", "4", "--save_steps", "2", "--keep_checkpoints")
    assert not (run / "model").exists()
    destination = tmp_path / "shipped"
    load_recipe("ship_encoder").main(["--run_dir", str(run), "--destination", str(destination)])
    provenance = json.loads((destination / "provenance.json").read_text())
    assert provenance["budget"]["global_step"] == 4 and "stopped" in provenance["budget"]["state"]
    checkpoint = load_file(str(sorted((run / "checkpoints").iterdir())[-1] / "model.safetensors"))
    shipped = Dinov2Model.from_pretrained(destination).state_dict()
    assert all(
        torch.equal(shipped[k.removeprefix("dinov2.")], v) for k, v in checkpoint.items() if k.startswith("dinov2.")
    )
    with pytest.raises(SystemExit, match="not a pre-training run"):
        load_recipe("ship_encoder").main(["--run_dir", str(tmp_path / "nothing")])
