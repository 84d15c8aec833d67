"""The training recipes called in-process with tiny arguments: outputs, YAML configs, output-folder semantics, resume,
errors on bad input, the default-encoder cache and the Hub upload (mocked at the `HfApi` boundary)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import BertConfig, BertModel, Dinov2Model

from helpers.recipes import RECIPES, load_recipe
from hf_simo import SimoModel
from hf_simo.accelerate_configs import available_configs, config_path, config_paths
from hf_simo.testing_utils import save_tiny_dataset, save_tiny_encoder
from hf_simo.training.run import RUN_ARGS_NAME, read_summary


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    return {
        "dataset": str(save_tiny_dataset(root / "data", train=32, validation=12)),
        "encoder": str(save_tiny_encoder(root / "encoder")),
    }


def tiny_args(assets, output_dir, *extra) -> list[str]:
    return [
        "--dataset", assets["dataset"],
        "--output_dir", str(output_dir),
        "--per_device_train_batch_size", "8",
        "--per_device_eval_batch_size", "8",
        "--stage1_epochs", "1",
        "--stage2_epochs", "1",
        "--disable_tqdm",
        *extra,
    ]  # fmt: skip


def test_finetune_main_trains_saves_and_does_not_retrain(assets, tmp_path):
    finetune = load_recipe("finetune")
    out = tmp_path / "depth"
    folder = finetune.main(tiny_args(assets, out, "--model_name_or_path", assets["encoder"], "--task", "depth"))
    assert folder == out / "model"
    model = SimoModel.from_pretrained(folder)
    assert model.task_names == ["depth"]
    assert model.config.base_model_name_or_path == assets["encoder"]
    summary = read_summary(out)
    assert summary["tasks"] == ["depth"] and summary["stage_steps"] == {"stage1_heads": 4, "stage2_full": 4}
    assert summary["encoder_drift"]["tau_ratio"] > 0
    assert set(summary["validation"]["primary"]) == {"depth"}
    assert not (out / "checkpoints").exists() and not (out / "best").exists()
    assert (out / "logs" / "finetune" / "metrics.jsonl").is_file()
    # stage 2 moved the encoder away from the base
    base = Dinov2Model.from_pretrained(assets["encoder"]).state_dict()
    assert any(not torch.equal(base[k], v) for k, v in model.dinov2.state_dict().items() if "mask_token" not in k)

    weights = folder / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert (
        finetune.main(tiny_args(assets, out, "--model_name_or_path", assets["encoder"], "--task", "depth")) == folder
    )
    assert weights.stat().st_mtime_ns == stamp  # the same run, already complete: nothing retrained


def test_finetune_from_a_yaml_file_with_a_dpt_head(assets, tmp_path):
    config = {
        "dataset": assets["dataset"],
        "model_name_or_path": assets["encoder"],
        "output_dir": str(tmp_path / "seg"),
        "task": "segmentation",
        "head": "dpt",
        "head_options": {"fusion_hidden_size": 16},
        "per_device_train_batch_size": 8,
        "stage1_epochs": 1,
        "stage2_epochs": 1,
        "disable_tqdm": True,
    }
    path = tmp_path / "finetune.yaml"
    path.write_text(yaml.safe_dump(config))
    folder = load_recipe("finetune").main([str(path)])
    model = SimoModel.from_pretrained(folder)
    assert model.config.tasks["segmentation"]["head"] == "dpt"
    assert model.config.tasks["segmentation"]["head_options"]["fusion_hidden_size"] == 16
    assert json.loads((tmp_path / "seg" / RUN_ARGS_NAME).read_text())["head"] == "dpt"

    path.write_text(yaml.safe_dump({**config, "learning_rate_typo": 1.0}))
    with pytest.raises(SystemExit, match="learning_rate_typo"):
        load_recipe("finetune").main([str(path)])


def test_train_mtl_main_trains_every_task(assets, tmp_path):
    folder = load_recipe("train_mtl").main(
        tiny_args(assets, tmp_path / "mtl", "--model_name_or_path", assets["encoder"])
    )
    model = SimoModel.from_pretrained(folder)
    assert sorted(model.task_names) == ["depth", "normals", "segmentation"]
    summary = read_summary(tmp_path / "mtl")
    assert set(summary["validation"]["primary"]) == {"segmentation", "depth", "normals"}
    assert all(f"eval_loss_{t}" in summary["history"][-1] for t in model.task_names)


def test_output_folder_holding_another_run_is_an_error_unless_overwritten(assets, tmp_path, capsys):
    finetune = load_recipe("finetune")
    out = tmp_path / "run"
    finetune.main(tiny_args(assets, out, "--model_name_or_path", assets["encoder"], "--task", "depth"))
    other = tiny_args(assets, out, "--model_name_or_path", assets["encoder"], "--task", "normals")
    with pytest.raises(SystemExit) as info:
        finetune.main(other)
    message = str(info.value.code)
    assert "holds a different run" in message and "--overwrite_output_dir" in message and "\n" not in message
    assert SimoModel.from_pretrained(out / "model").task_names == ["depth"]  # untouched
    folder = finetune.main([*other, "--overwrite_output_dir"])
    assert SimoModel.from_pretrained(folder).task_names == ["normals"]


def test_interrupted_run_leaves_no_model_and_resumes_to_the_uninterrupted_result(assets, tmp_path):
    finetune = load_recipe("finetune")
    common = ["--model_name_or_path", assets["encoder"], "--task", "segmentation", "--save_steps", "2"]
    reference = finetune.main(tiny_args(assets, tmp_path / "ref", *common))
    out = tmp_path / "run"
    finetune.main(tiny_args(assets, out, *common, "--stop_after_steps", "5"))
    assert not (out / "model").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir())  # complete checkpoints only
    assert not any(p.name.startswith(".tmp") for p in (out / "checkpoints").iterdir())
    resumed = finetune.main(tiny_args(assets, out, *common))  # same run (stop_after_steps is not part of it)
    expected, got = load_file(reference / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)


def test_bad_inputs_fail_with_one_clear_line(assets, tmp_path):
    finetune = load_recipe("finetune")

    def error_of(*args) -> str:
        with pytest.raises(SystemExit) as info:
            finetune.main(tiny_args(assets, tmp_path / "x", *args))
        message = str(info.value.code)
        assert message.startswith("error: ") and "\n" not in message
        return message

    assert "not in the dataset" in error_of("--model_name_or_path", assets["encoder"], "--task", "albedo")
    assert "segmentation" in error_of("--model_name_or_path", assets["encoder"], "--task", "albedo")
    bert = tmp_path / "bert"
    BertModel(
        BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    ).save_pretrained(bert)
    assert "not DINOv2" in error_of("--model_name_or_path", str(bert), "--task", "depth")
    # a rejected run does not claim the folder: the next attempt is not "a different run"
    assert not (tmp_path / "x").exists()
    assert "is not a local folder" in error_of("--model_name_or_path", "no-such-org/no-such-model", "--task", "depth")
    with pytest.raises(SystemExit, match="neither a benchmark preset"):
        finetune.main(["--dataset", str(tmp_path / "missing"), "--output_dir", str(tmp_path / "y")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="not a saved DatasetDict"):
        finetune.main(["--dataset", str(tmp_path / "empty"), "--output_dir", str(tmp_path / "y")])


@pytest.mark.parametrize(
    ("types", "option", "value", "message"),
    [
        ("run", "--per_device_train_batch_size", "0", "a positive integer"),
        ("run", "--per_device_eval_batch_size", "-2", "a positive integer"),
        ("run", "--gradient_accumulation_steps", "0", "a positive integer"),
        ("run", "--save_steps", "0", "a positive integer (or unset)"),
        ("run", "--stop_after_steps", "-1", "a positive integer (or unset)"),
        ("run", "--eval_steps", "0", "a positive integer (or unset)"),
        ("run", "--save_total_limit", "0", "a positive integer"),
        ("run", "--logging_steps", "-1", "an integer >= 0"),
        ("run", "--max_grad_norm", "0", "a positive number"),
        ("run", "--warmup_ratio", "1.5", "in [0, 1)"),
        ("data", "--train_samples", "0", "a positive integer"),
        ("data", "--image_size", "0", "a positive integer"),
        ("data", "--max_eval_samples", "0", "a positive integer (or unset)"),
        ("finetune", "--stage2_epochs", "0", "a positive integer"),
        ("finetune", "--stage1_patience", "0", "a positive integer (or unset)"),
        ("finetune", "--stage1_learning_rate", "0", "a positive number"),
        ("mtl", "--stage1_epochs", "-1", "a positive integer"),
        ("encoder", "--num_train_epochs", "0", "a positive integer"),
        ("encoder", "--mask_ratio", "1", "in [0, 1)"),
        ("realign", "--num_train_epochs", "0", "a positive integer"),
        ("realign", "--head_epochs", "0", "a positive integer"),
        ("realign", "--learning_rate", "0", "a positive number"),
        ("realign", "--early_stopping_patience", "0", "a positive integer (or unset)"),
    ],
)
def test_non_positive_sizes_steps_and_epochs_are_refused_at_parsing(types, option, value, message):
    from hf_simo.cli.parser import parse_args
    from hf_simo.data import DataArguments
    from hf_simo.realign.arguments import RealignArguments
    from hf_simo.training.arguments import EncoderArguments, FinetuneArguments, MTLArguments, RunArguments

    dataclass_types = {
        "run": RunArguments,
        "data": DataArguments,
        "finetune": FinetuneArguments,
        "mtl": MTLArguments,
        "encoder": EncoderArguments,
        "realign": RealignArguments,
    }
    with pytest.raises(ValueError, match=rf"^{option} must be .*{re.escape(message)}.*, got"):
        parse_args([dataclass_types[types]], [option, value])
    finetune = load_recipe("finetune")
    if types in ("run", "data", "finetune"):  # the recipe: one line, exit before any work
        with pytest.raises(SystemExit, match=rf"^error: {option} must be"):
            finetune.main([option, value])


def test_default_encoder_is_pretrained_once_and_reused(assets, tmp_path):
    encoder_yaml = tmp_path / "encoder.yaml"
    encoder_yaml.write_text(
        yaml.safe_dump({"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2,
                        "num_train_epochs": 1})
    )  # fmt: skip
    finetune = load_recipe("finetune")
    pretrain = ["--pretrain_encoder", "--encoder_config", str(encoder_yaml)]
    first = finetune.main(tiny_args(assets, tmp_path / "a", *pretrain, "--task", "depth"))
    base = Path(SimoModel.from_pretrained(first).config.base_model_name_or_path)
    assert base.name == "model" and "encoders" in base.parts  # the cache under $HF_HOME/hf_simo/encoders
    encoder = Dinov2Model.from_pretrained(base)
    assert encoder.config.hidden_size == 32
    stamp = (base / "model.safetensors").stat().st_mtime_ns
    second = finetune.main(tiny_args(assets, tmp_path / "b", *pretrain, "--task", "normals"))
    assert SimoModel.from_pretrained(second).config.base_model_name_or_path == str(base)
    assert (base / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_pretrain_main_writes_a_dinov2_folder(assets, tmp_path):
    folder = load_recipe("pretrain_encoder").main([
        "--dataset", assets["dataset"],
        "--output_dir", str(tmp_path / "enc"),
        "--hidden_size", "32", "--num_hidden_layers", "2", "--num_attention_heads", "2", "--mlp_ratio", "2",
        "--num_train_epochs", "2", "--per_device_train_batch_size", "8",
        "--disable_tqdm",
    ])  # fmt: skip
    encoder = Dinov2Model.from_pretrained(folder)
    assert (encoder.config.hidden_size, encoder.config.patch_size, encoder.config.image_size) == (32, 8, 32)
    history = read_summary(tmp_path / "enc")["history"]
    assert len(history) == 2 and history[-1]["eval_loss"] < history[0]["eval_loss"]
    assert not any(p.suffix == ".bin" for p in folder.iterdir())


def test_push_to_hub_uploads_the_model_folder(assets, tmp_path, monkeypatch):
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("init", {"token": token}))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

        def create_commit(self, **kwargs):
            calls.append(("create_commit", kwargs))
            return "https://huggingface.co/org/name/commit/0"

    monkeypatch.setattr("hf_simo.publishing.HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    folder = load_recipe("finetune").main(
        tiny_args(
            assets, tmp_path / "run", "--model_name_or_path", assets["encoder"], "--task", "depth",
            "--push_to_hub", "--hub_model_id", "org/name", "--hub_private_repo",
        )
    )  # fmt: skip
    assert [c[0] for c in calls] == ["init", "create_repo", "create_commit"]
    assert calls[1][1]["repo_id"] == "org/name" and calls[1][1]["private"] is True
    assert calls[2][1]["repo_id"] == "org/name"
    expected = {"README.md", "config.json", "model.safetensors", "preprocessor_config.json"}
    assert {p.name for p in folder.iterdir()} == expected
    operations = calls[2][1]["operations"]  # exactly the model files are committed
    assert {op.path_in_repo for op in operations} == expected
    assert {Path(op.path_or_fileobj).parent for op in operations} == {folder}

    # the Hub unreachable: one line naming the repo, the model kept, the token never shown
    def push_failure() -> str:
        with pytest.raises(SystemExit) as exit_info:
            load_recipe("finetune").main(
                tiny_args(
                    assets, tmp_path / "run", "--model_name_or_path", assets["encoder"], "--task", "depth",
                    "--push_to_hub", "--hub_model_id", "org/name", "--hub_private_repo",
                )
            )  # fmt: skip
        return str(exit_info.value.code)

    def unreachable(self, repo_id, **kwargs):
        raise ConnectionError(f"network is unreachable (token {self.token})")

    monkeypatch.setattr(FakeApi, "create_repo", unreachable)
    monkeypatch.setattr(FakeApi, "token", "hf_test_token", raising=False)
    message = push_failure()
    assert "could not reach the Hugging Face Hub to push to 'org/name'" in message and "\n" not in message
    assert f"the model stays in {folder}" in message and "hf_test_token" not in message
    assert SimoModel.from_pretrained(folder).task_names == ["depth"]

    from huggingface_hub import HfApi

    monkeypatch.setattr("hf_simo.publishing.HfApi", HfApi)  # the real one, under HF_HUB_OFFLINE=1 (conftest)
    message = push_failure()
    assert "'org/name': offline mode is on (HF_HUB_OFFLINE=1)" in message and "\n" not in message
    assert SimoModel.from_pretrained(folder).task_names == ["depth"]


def test_packaged_accelerate_configs():
    assert available_configs() == ["cpu", "multi_gpu", "multi_node", "single_gpu"]
    for name, path in config_paths().items():
        config = yaml.safe_load(path.read_text())
        assert config["distributed_type"] in ("NO", "MULTI_GPU") and path == config_path(name)
    assert yaml.safe_load(config_path("cpu").read_text())["use_cpu"] is True
    assert yaml.safe_load(config_path("multi_node").read_text())["num_machines"] == 2
    with pytest.raises(ValueError, match="available"):
        config_path("tpu")


@pytest.mark.parametrize(
    "config", sorted(p for p in (RECIPES / "configs").glob("*.yaml") if p.stem != "merge"), ids=lambda p: p.name
)
def test_shipped_yaml_configs_parse(config):
    """Each shipped config parses with its recipe's own command (unknown keys would raise); merge.yaml: in
    test_merge_cli.py."""
    import importlib

    from hf_simo.cli.parser import parse_args
    from hf_simo.data import DataArguments
    from hf_simo.realign.arguments import RealignArguments
    from hf_simo.training.arguments import EncoderArguments, FinetuneArguments, MTLArguments
    from hf_simo.utils.logging import CommonArguments

    kind = config.stem.split("_")[0]
    recipe = {"pretrain": "pretrain_encoder", "finetune": "finetune", "train": "train_mtl", "realign": "realign"}
    command = importlib.import_module(f"hf_simo.cli.{recipe[kind]}").COMMAND
    parsed, _ = command.parse(["--config", str(config)])
    first = {
        "pretrain": EncoderArguments,
        "finetune": FinetuneArguments,
        "train": MTLArguments,
        "realign": RealignArguments,
    }[kind]
    assert isinstance(parsed[0], first) and [type(p) for p in parsed].count(DataArguments) == 1
    legacy = parse_args([*command.arguments, CommonArguments], [str(config)])
    assert legacy[:-1] == parsed  # the legacy sole-YAML form reads the same


def test_encoder_learning_rate_and_layer_decay_reach_the_optimizer(assets, tmp_path, monkeypatch):
    """Stage 2's AdamW gets one rate per block (decayed from the last block down), the embeddings the lowest, the
    final norm the encoder's rate and the heads the stage-2 rate; weight decay stays off biases and norms."""
    import hf_simo.training.loop as loop

    created = []

    class RecordingAdamW(torch.optim.AdamW):
        def __init__(self, params, **kwargs):
            super().__init__(params, **kwargs)
            created.append(self)

    monkeypatch.setattr(loop.torch.optim, "AdamW", RecordingAdamW)
    head_lr, encoder_lr, decay = 1e-3, 2e-4, 0.5
    extra = ["--model_name_or_path", assets["encoder"], "--task", "depth", "--stage2_learning_rate", str(head_lr)]
    extra += ["--stage2_encoder_learning_rate", str(encoder_lr), "--layer_decay", str(decay)]
    folder = load_recipe("finetune").main(tiny_args(assets, tmp_path / "llrd", *extra))
    model = SimoModel.from_pretrained(folder)
    stage1, stage2 = created
    layers = model.config.backbone_config.num_hidden_layers
    expected_sizes: dict = {}  # layer id -> parameter count, from the names (mask token: frozen, unused)
    for name, param in model.named_parameters():
        if "mask_token" in name:
            continue
        if name.startswith("dinov2.embeddings."):
            layer = 0
        elif name.startswith("dinov2.encoder.layer."):
            layer = int(name.split(".")[3]) + 1
        else:
            layer = layers + 1 if name.startswith("dinov2.") else None
        expected_sizes[layer] = expected_sizes.get(layer, 0) + param.numel()
    seen, sizes = {}, {}
    for group in stage2.param_groups:
        layer = group["layer_id"]
        expected = head_lr if layer is None else encoder_lr * decay ** (layers + 1 - layer)
        assert math.isclose(group["max_lr"], expected, rel_tol=1e-12), group["layer_id"]
        for param in group["params"]:
            seen[id(param)] = (layer, group["weight_decay"], param.ndim)
            sizes[layer] = sizes.get(layer, 0) + param.numel()
    assert sizes == expected_sizes  # heads, embeddings, every block and the final norm, each in its own groups
    assert all(wd == 0.0 for _, wd, ndim in seen.values() if ndim < 2)
    assert any(wd > 0 for _, wd, ndim in seen.values() if ndim >= 2)
    assert all("layer_id" not in g for g in stage1.param_groups)  # stage 1: the heads at one rate, as before
    summary = read_summary(tmp_path / "llrd")
    assert summary["encoder_drift"]["tau_ratio"] > 0 and -1 <= summary["encoder_drift"]["cosine_to_base"] <= 1


def test_layer_ids_follow_beit_and_dinov2():
    from hf_simo.training.finetune import encoder_layer_id

    assert encoder_layer_id("dinov2.embeddings.patch_embeddings.projection.weight", 12) == 0
    assert encoder_layer_id("dinov2.embeddings.cls_token", 12) == 0
    assert encoder_layer_id("dinov2.encoder.layer.0.mlp.fc1.weight", 12) == 1
    assert encoder_layer_id("dinov2.encoder.layer.11.norm2.bias", 12) == 12
    assert encoder_layer_id("dinov2.layernorm.weight", 12) == 13
    assert encoder_layer_id("heads.depth.conv.weight", 12) is None


def test_default_learning_rates_decay_layer_wise_and_one_rate_is_one_group():
    from hf_simo.training.arguments import FinetuneArguments, MTLArguments, RunArguments
    from hf_simo.training.finetune import two_stages

    # the defaults chosen on validation (benchmarks/lr_sweep.py): the heads' rate for the encoder, decay 0.75
    for arguments in (FinetuneArguments(), MTLArguments()):
        assert arguments.layer_decay == 0.75 and arguments.stage2_encoder_learning_rate is None
        stages = two_stages(arguments, RunArguments())
        assert callable(stages[1].trainable) and stages[1].learning_rate == 2e-3  # layer-wise groups
    stages = two_stages(FinetuneArguments(layer_decay=1.0), RunArguments())
    assert stages[1].trainable == [""] and stages[1].learning_rate == 2e-3
    same = two_stages(FinetuneArguments(layer_decay=1.0, stage2_encoder_learning_rate=2e-3), RunArguments())
    assert same[1].trainable == [""]  # the same rate as the heads and no decay: one group, bit for bit


def test_bad_learning_rate_options_are_refused(assets, tmp_path):
    finetune = load_recipe("finetune")
    base = tiny_args(assets, tmp_path / "x", "--model_name_or_path", assets["encoder"], "--task", "depth")
    with pytest.raises(SystemExit, match="layer_decay"):
        finetune.main([*base, "--layer_decay", "1.5"])
    with pytest.raises(SystemExit, match="stage2_encoder_learning_rate"):
        finetune.main([*base, "--stage2_encoder_learning_rate", "0"])
    assert not (tmp_path / "x").exists()
