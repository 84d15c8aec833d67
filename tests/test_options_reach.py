"""Every option of the training recipes and of `hf-simo realign` takes effect or is refused (issue 11, item 1).

One table per entry point maps each option to how it is observed: a spy where the code looks the name up (`fit` of
the recipe module, `realign_heads`, `search_and_merge`, `SimoModel.from_backbone`) records what reached it and stops
the run, and a check reads the recorded `TrainerConfig` / `Stage` / Accelerator / model; options whose effect is a
whole run (resume, push, the default encoder) name the test that proves it. `assert_every_field_covered` fails when
a field is in no table, so an option cannot be accepted and dropped again. Also: `accelerate launch` settings win
over the defaults, a contradicting option is refused, old spellings exit 2 naming the new one, and the realign job
refuses another run's state.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch

from helpers.options import assert_every_field_covered
from helpers.recipes import load_recipe
from hf_simo.testing_utils import save_tiny_dataset, save_tiny_encoder


class Reached(Exception):
    """Raised by a spy: the option reached the spied call; `record` holds what it received."""

    def __init__(self, record):
        super().__init__("spy reached")
        self.record = record


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Mixed precision and accumulation are per-process state in Accelerate: reset around each test."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("reach")
    return {
        "dataset": str(save_tiny_dataset(root / "data", train=32, validation=12, test=8)),
        "encoder": str(save_tiny_encoder(root / "encoder")),
        "root": root,
    }


def spy_fit(monkeypatch, module: str):
    """Replace `fit` where `module` looks it up; the run stops there with everything `fit` was given."""

    def fit(accelerator, model, stages, train_data, eval_data, loss_fn, config, **kwargs):
        raise Reached(
            {
                "accelerator": accelerator,
                "model": model,
                "stages": stages,
                "train": train_data,
                "eval": eval_data,
                "config": config,
                **kwargs,
            }
        )

    monkeypatch.setattr(f"{module}.fit", fit)


def spy_from_backbone(monkeypatch, seen: list):
    from hf_simo import SimoModel

    original = SimoModel.from_backbone.__func__

    def from_backbone(cls, backbone, tasks, **kwargs):
        seen.append(kwargs)
        return original(cls, backbone, tasks, **kwargs)

    monkeypatch.setattr(SimoModel, "from_backbone", classmethod(from_backbone))


def reach(recipe: str, argv: list[str]) -> dict:
    with pytest.raises(Reached) as reached:
        load_recipe(recipe).main(argv)
    return reached.value.record


# ------------------------------------------------------------------------------------ recipes/finetune.py, train_mtl


def stage(record, index):
    return record["stages"][index]


FINETUNE_OBSERVED = {
    # option: (command-line values, check on the record `fit` received)
    "output_dir": (None, lambda r, a: Path(r["config"].output_dir) == a["out"]),
    "seed": (["--seed", "5"], lambda r, a: r["config"].seed == 5),
    "per_device_train_batch_size": (
        ["--per_device_train_batch_size", "4"],
        lambda r, a: r["config"].train_batch_size == 4,
    ),
    "per_device_eval_batch_size": (
        ["--per_device_eval_batch_size", "5"],
        lambda r, a: r["config"].eval_batch_size == 5,
    ),
    "gradient_accumulation_steps": (
        ["--gradient_accumulation_steps", "3"],
        lambda r, a: r["accelerator"].gradient_accumulation_steps == 3,
    ),
    "mixed_precision": (["--mixed_precision", "bf16"], lambda r, a: r["accelerator"].mixed_precision == "bf16"),
    "max_grad_norm": (["--max_grad_norm", "2.5"], lambda r, a: r["config"].max_grad_norm == 2.5),
    "weight_decay": (["--weight_decay", "0.3"], lambda r, a: {s.weight_decay for s in r["stages"]} == {0.3}),
    "warmup_ratio": (["--warmup_ratio", "0.2"], lambda r, a: {s.warmup_ratio for s in r["stages"]} == {0.2}),
    "early_stopping_threshold": (
        ["--early_stopping_threshold", "0.1"],
        lambda r, a: {s.min_delta for s in r["stages"]} == {0.1},
    ),
    "eval_steps": (["--eval_steps", "3"], lambda r, a: {s.eval_steps for s in r["stages"]} == {3}),
    "save_steps": (["--save_steps", "7"], lambda r, a: r["config"].checkpointing_steps == 7),
    "save_total_limit": (["--save_total_limit", "3"], lambda r, a: r["config"].checkpoints_total_limit == 3),
    "logging_steps": (["--logging_steps", "3"], lambda r, a: r["config"].logging_steps == 3),
    "report_to": (["--report_to", "none"], lambda r, a: r["accelerator"].log_with == []),
    "stop_after_steps": (["--stop_after_steps", "2"], lambda r, a: r["config"].stop_after_steps == 2),
    "num_threads": (["--num_threads", "2"], lambda r, a: torch.get_num_threads() == 2),
    "dataloader_num_workers": (
        ["--dataloader_num_workers", "1"],
        lambda r, a: r["config"].dataloader_num_workers == 1,
    ),
    "dataset": (None, lambda r, a: len(r["train"]) == 32 and len(r["eval"]) == 12),
    "max_train_samples": (["--max_train_samples", "16"], lambda r, a: len(r["train"]) == 16),
    "max_eval_samples": (["--max_eval_samples", "6"], lambda r, a: len(r["eval"]) == 6),
    "augment": (["--augment", "false"], lambda r, a: r["train_transform"] is None),
    "model_name_or_path": (None, lambda r, a: r["model"].config.base_model_name_or_path == a["encoder"]),
    "head": (["--head", "dpt"], lambda r, a: {t["head"] for t in r["model"].config.tasks.values()} == {"dpt"}),
    "head_options": (
        ["--head", "dpt", "--head_options", '{"fusion_hidden_size": 16}'],
        lambda r, a: (
            {(t.get("head_options") or {}).get("fusion_hidden_size") for t in r["model"].config.tasks.values()} == {16}
        ),
    ),
    "stage1_epochs": (["--stage1_epochs", "4"], lambda r, a: stage(r, 0).num_epochs == 4),
    "stage1_learning_rate": (["--stage1_learning_rate", "0.03"], lambda r, a: stage(r, 0).learning_rate == 0.03),
    "stage1_patience": (["--stage1_patience", "7"], lambda r, a: stage(r, 0).early_stopping_patience == 7),
    "stage2_epochs": (["--stage2_epochs", "4"], lambda r, a: stage(r, 1).num_epochs == 4),
    "stage2_learning_rate": (["--stage2_learning_rate", "0.004"], lambda r, a: stage(r, 1).learning_rate == 0.004),
    "stage2_patience": (["--stage2_patience", "7"], lambda r, a: stage(r, 1).early_stopping_patience == 7),
}
FROM_BACKBONE_OBSERVED = {  # option: (values, check on the keywords SimoModel.from_backbone received)
    "model_revision": (["--model_revision", "v1"], lambda k: k["revision"] == "v1"),
    "token": (["--token", "hf_secret"], lambda k: k["token"] == "hf_secret"),
    "cache_dir": (["--cache_dir", "/tmp/hub"], lambda k: k["cache_dir"] == "/tmp/hub"),
    "local_files_only": (["--local_files_only"], lambda k: k["local_files_only"] is True),
    "allow_pickle": (["--allow_pickle"], lambda k: k["allow_pickle"] is True),
}
WHOLE_RUNS = {  # option: the test that proves it on a whole run
    "overwrite_output_dir": "test_recipes_train.py::test_changed_arguments_are_refused_unless_overwrite",
    "keep_checkpoints": "test_shipped_encoder.py (--keep_checkpoints keeps checkpoints/ for the export)",
    "push_to_hub": "test_recipes_train.py::test_push_to_hub_uploads_the_model_folder",
    "hub_model_id": "test_recipes_train.py::test_push_to_hub_uploads_the_model_folder; refused alone below",
    "hub_private_repo": "test_recipes_train.py::test_push_to_hub_uploads_the_model_folder (private=True)",
    "hub_revision": "test_push_options_reach_the_upload below",
    "commit_message": "test_push_options_reach_the_upload below",
    "create_pr": "test_push_options_reach_the_upload below",
    "pretrain_encoder": "test_recipes_train.py::test_default_encoder_is_pretrained_once_and_reused",
    "encoder_config": "test_recipes_train.py::test_default_encoder_is_pretrained_once_and_reused",
    "stage2_encoder_learning_rate": "test_recipes_train.py::test_encoder_learning_rate_and_layer_decay_reach_the_optimizer",
    "layer_decay": "test_recipes_train.py::test_encoder_learning_rate_and_layer_decay_reach_the_optimizer",
    "dataset_path": "test_data_loaders.py (real datasets read from --dataset_path)",
    "image_size": "test_data_synthetic.py (the embedded benchmark's size; a saved dataset keeps its own)",
    "train_samples": "test_data_synthetic.py (embedded benchmark split sizes)",
    "validation_samples": "test_data_synthetic.py (embedded benchmark split sizes)",
    "data_seed": "test_data_synthetic.py (embedded benchmark seed)",
    "dataset_cache_dir": "test_data_synthetic.py (the benchmark cache folder)",
}


def finetune_argv(assets, out, *extra):
    return [
        "--dataset", assets["dataset"], "--output_dir", str(out), "--model_name_or_path", assets["encoder"],
        "--per_device_train_batch_size", "8", "--disable_tqdm", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("recipe", ["finetune", "train_mtl"])
def test_every_recipe_option_is_in_the_table(recipe):
    from hf_simo.cli import finetune, train_mtl

    command = {"finetune": finetune, "train_mtl": train_mtl}[recipe].COMMAND
    table = {**FINETUNE_OBSERVED, **FROM_BACKBONE_OBSERVED, **WHOLE_RUNS}
    if recipe == "train_mtl":
        table["tasks"] = "test_mtl_tasks_reach_the_model below"
    else:
        table["task"] = "test_recipes_train.py::test_finetune_main_trains_saves_and_does_not_retrain"
    assert_every_field_covered(command, table)


@pytest.mark.parametrize("option", sorted(FINETUNE_OBSERVED))
def test_finetune_options_reach_the_loop(option, assets, tmp_path, monkeypatch):
    spy_fit(monkeypatch, "hf_simo.training.finetune")
    values, check = FINETUNE_OBSERVED[option]
    threads = torch.get_num_threads()
    try:
        record = reach("finetune", finetune_argv(assets, tmp_path / "run", *(values or [])))
        assert check(record, {"out": tmp_path / "run", **assets}), option
    finally:
        torch.set_num_threads(threads)


def test_the_defaults_are_what_the_table_changes(assets, tmp_path, monkeypatch):
    """Positive control: without the options, each check fails (so every check above can fail)."""
    spy_fit(monkeypatch, "hf_simo.training.finetune")
    record = reach("finetune", finetune_argv(assets, tmp_path / "run"))
    context = {"out": tmp_path / "run", **assets}
    unchanged = [
        option
        for option, (values, check) in FINETUNE_OBSERVED.items()
        if values is not None and check(record, context)
    ]
    assert unchanged in ([], ["num_threads"]), unchanged  # the test machine may already run 2 threads
    assert record["accelerator"].mixed_precision == "no" and record["config"].train_batch_size == 8


def test_mtl_tasks_reach_the_model(assets, tmp_path, monkeypatch):
    spy_fit(monkeypatch, "hf_simo.training.finetune")
    record = reach("train_mtl", finetune_argv(assets, tmp_path / "mtl", "--tasks", "depth", "normals"))
    assert record["model"].task_names == ["depth", "normals"]


@pytest.mark.parametrize("option", sorted(FROM_BACKBONE_OBSERVED))
def test_hub_options_reach_the_encoder_download(option, assets, tmp_path, monkeypatch):
    seen: list[dict] = []
    spy_from_backbone(monkeypatch, seen)
    spy_fit(monkeypatch, "hf_simo.training.finetune")
    values, check = FROM_BACKBONE_OBSERVED[option]
    # the spy records the keywords first; a revision of a local folder may then be refused: irrelevant here
    with contextlib.suppress(Reached, SystemExit, Exception):
        load_recipe("finetune").main(finetune_argv(assets, tmp_path / "run", *values))
    assert seen and check(seen[0]), (option, seen)
    assert not check(
        {"revision": None, "token": None, "cache_dir": None, "local_files_only": False, "allow_pickle": False}
    )


def test_push_options_need_push_to_hub_and_push_to_hub_needs_a_repo(assets, tmp_path):
    finetune = load_recipe("finetune")
    with pytest.raises(SystemExit, match=r"--hub_model_id.* configure an upload: add --push_to_hub"):
        finetune.main(finetune_argv(assets, tmp_path / "a", "--hub_model_id", "org/name"))
    with pytest.raises(SystemExit, match="--push_to_hub needs --hub_model_id ORG/NAME"):
        finetune.main(finetune_argv(assets, tmp_path / "b", "--push_to_hub"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before any work


def test_push_options_reach_the_upload(tmp_path, monkeypatch):
    from accelerate import Accelerator

    from hf_simo.hub import HubOptions, PushOptions
    from hf_simo.training.run import push_from_main_process

    calls = []

    class Pushed:
        url = "https://huggingface.co/org/name"

    monkeypatch.setattr(
        "hf_simo.publishing.push_folder_to_hub", lambda folder, repo, **kw: calls.append((repo, kw)) or Pushed()
    )
    push = PushOptions(
        hub_model_id="org/name", hub_private_repo=True, hub_revision="dev", commit_message="m", create_pr=True
    )
    push_from_main_process(Accelerator(cpu=True), tmp_path, None, push=push, hub=HubOptions(token="hf_x"))
    [(repo, kwargs)] = calls
    assert repo == "org/name"
    assert kwargs == {
        "private": True, "commit_message": "m", "revision": "dev", "create_pr": True, "token": "hf_x"
    }  # fmt: skip


# ------------------------------------------------------------------------------------ recipes/pretrain_encoder.py

TINY = ["--hidden_size", "32", "--num_hidden_layers", "2", "--num_attention_heads", "2", "--mlp_ratio", "2"]
PRETRAIN_OBSERVED = {
    "hidden_size": (None, lambda r: r["model"].dinov2.config.hidden_size == 32),
    "num_hidden_layers": (None, lambda r: r["model"].dinov2.config.num_hidden_layers == 2),
    "num_attention_heads": (None, lambda r: r["model"].dinov2.config.num_attention_heads == 2),
    "mlp_ratio": (None, lambda r: r["model"].dinov2.config.mlp_ratio == 2),
    "patch_size": (["--patch_size", "4", "--mask_patch_size", "8"], lambda r: r["model"].patch_size == 4),
    "norm_pix_loss": (["--norm_pix_loss", "false"], lambda r: r["model"].norm_pix_loss is False),
    "num_train_epochs": (["--num_train_epochs", "3"], lambda r: r["stages"][0].num_epochs == 3),
    "learning_rate": (["--learning_rate", "0.01"], lambda r: r["stages"][0].learning_rate == 0.01),
    "early_stopping_patience": (["--early_stopping_patience", "2"], lambda r: r["stages"][0].restore_best),
    "per_device_train_batch_size": (None, lambda r: r["config"].train_batch_size == 64),  # the recipe's default
    "early_stopping_threshold": (["--early_stopping_threshold", "0.2"], lambda r: r["stages"][0].min_delta == 0.2),
}


def test_pretrain_options_are_in_the_table():
    """The run options are the recipes' (same RunArguments, same TrainingRun), observed above for finetune."""
    from helpers.options import command_fields
    from hf_simo.cli import pretrain_encoder

    table = {
        **FINETUNE_OBSERVED,
        **WHOLE_RUNS,
        **PRETRAIN_OBSERVED,
        "mask_ratio": "test_shipped_encoder.py / the SimMIM transform (make_mask_transform)",
        "mask_patch_size": "the SimMIM transform (make_mask_transform), checked with patch_size above",
    }
    fields = command_fields(pretrain_encoder.COMMAND)
    assert_every_field_covered(pretrain_encoder.COMMAND, {k: v for k, v in table.items() if k in fields})


@pytest.mark.parametrize("option", sorted(PRETRAIN_OBSERVED))
def test_pretrain_options_reach_the_loop(option, assets, tmp_path, monkeypatch):
    spy_fit(monkeypatch, "hf_simo.training.pretrain")
    values, check = PRETRAIN_OBSERVED[option]
    argv = ["--dataset", assets["dataset"], "--output_dir", str(tmp_path / "enc"), *TINY, *(values or [])]
    record = reach("pretrain_encoder", argv)
    assert check(record), option


def test_pretrain_batch_size_and_run_options_reach_the_loop(assets, tmp_path, monkeypatch):
    """--per_device_train_batch_size is no longer overridden by the removed --batch_size (it was dropped)."""
    spy_fit(monkeypatch, "hf_simo.training.pretrain")
    argv = ["--dataset", assets["dataset"], "--output_dir", str(tmp_path / "enc"), *TINY]
    record = reach("pretrain_encoder", [*argv, "--per_device_train_batch_size", "8", "--weight_decay", "0.2"])
    assert record["config"].train_batch_size == 8 and record["stages"][0].weight_decay == 0.2


# ------------------------------------------------------------------------------------ launch settings


@pytest.mark.parametrize(
    ("option", "variable", "launched", "value", "attribute"),
    [
        ("mixed_precision", "ACCELERATE_MIXED_PRECISION", "bf16", "no", "mixed_precision"),
        (
            "gradient_accumulation_steps",
            "ACCELERATE_GRADIENT_ACCUMULATION_STEPS",
            "2",
            3,
            "gradient_accumulation_steps",
        ),
    ],
)
def test_accelerate_launch_settings_win_over_the_defaults(
    option, variable, launched, value, attribute, tmp_path, monkeypatch
):
    from accelerate.state import AcceleratorState

    from hf_simo.errors import OptionError
    from hf_simo.training import make_accelerator

    monkeypatch.setenv(variable, launched)
    accelerator = make_accelerator(tmp_path, report_to=None)  # no option: what `accelerate launch` exported
    assert str(getattr(accelerator, attribute)) == launched
    AcceleratorState._reset_state(True)
    assert (
        str(getattr(make_accelerator(tmp_path, report_to=None, **{option: type(value)(launched)}), attribute))
        == launched
    )
    AcceleratorState._reset_state(True)
    with pytest.raises(OptionError, match=rf"--{option} {value} contradicts the launch \({variable}={launched}"):
        make_accelerator(tmp_path, report_to=None, **{option: value})


def test_a_bf16_launch_trains_in_bf16_and_records_it(assets, tmp_path, monkeypatch):
    """`accelerate launch --mixed_precision bf16 recipes/finetune.py` exports ACCELERATE_MIXED_PRECISION=bf16: the
    recipe now runs bf16 (it ran fp32), run_args.json records it, and a contradicting option is refused."""
    spy_fit(monkeypatch, "hf_simo.training.finetune")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    record = reach("finetune", finetune_argv(assets, tmp_path / "run"))
    assert record["accelerator"].mixed_precision == "bf16"
    assert json.loads((tmp_path / "run" / "run_args.json").read_text())["mixed_precision"] == "bf16"
    with pytest.raises(SystemExit, match=r"--mixed_precision no contradicts the launch"):
        load_recipe("finetune").main(finetune_argv(assets, tmp_path / "other", "--mixed_precision", "no"))
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")  # the launcher's default: the option decides
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    record = reach("finetune", finetune_argv(assets, tmp_path / "third", "--mixed_precision", "bf16"))
    assert record["accelerator"].mixed_precision == "bf16"


def test_a_launch_with_other_settings_is_another_run(assets, tmp_path, monkeypatch):
    spy_fit(monkeypatch, "hf_simo.training.finetune")
    reach("finetune", finetune_argv(assets, tmp_path / "run"))  # claims the folder, then stops at fit
    monkeypatch.setenv("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "2")
    with pytest.raises(SystemExit, match=r"holds a different run \(gradient_accumulation_steps: 1 -> 2\)"):
        load_recipe("finetune").main(finetune_argv(assets, tmp_path / "run"))


# ------------------------------------------------------------------------------------ old spellings


@pytest.mark.parametrize(
    ("recipe", "old", "new"),
    [
        ("finetune", "--checkpointing_steps", "--save_steps"),
        ("finetune", "--checkpoints_total_limit", "--save_total_limit"),
        ("finetune", "--early_stopping_min_delta", "--early_stopping_threshold"),
        ("finetune", "--log_with", "--report_to"),
        ("train_mtl", "--disable_progress_bar", "--disable_tqdm"),
        ("pretrain_encoder", "--num_epochs", "--num_train_epochs"),
        ("pretrain_encoder", "--batch_size", "--per_device_train_batch_size"),
        ("realign", "--num_epochs", "--num_train_epochs"),
        ("realign", "--patience", "--early_stopping_patience"),
        ("realign", "--realign_samples", "--max_eval_samples"),
        ("realign", "--eval_batch_size", "--per_device_eval_batch_size"),
        ("realign", "--log_with", "--report_to"),
    ],
)
def test_old_spellings_exit_2_naming_the_new_one(recipe, old, new, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_recipe(recipe).main([old, "1"])
    assert exit_info.value.code == 2
    assert f"{old} was renamed: use {new}" in capsys.readouterr().err


@pytest.mark.parametrize("recipe", ["finetune", "train_mtl", "pretrain_encoder", "realign"])
@pytest.mark.parametrize("words", [["--push_to_hub", "org/name"], ["--push-to-hub=org/name"]])
def test_push_to_hub_with_a_repo_exits_2_naming_hub_model_id(recipe, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_recipe(recipe).main(words)
    assert exit_info.value.code == 2
    assert "use --push_to_hub --hub_model_id org/name" in capsys.readouterr().err


def test_dashed_forms_and_config_files_with_overrides(assets, tmp_path, monkeypatch):
    spy_fit(monkeypatch, "hf_simo.training.finetune")
    config = tmp_path / "run.yaml"
    config.write_text(f"dataset: {assets['dataset']}\nsave_steps: 9\nreport_to: none\nstage1_epochs: 5\n")
    argv = ["--config", str(config), "--output_dir", str(tmp_path / "run"), "--model_name_or_path", assets["encoder"]]
    record = reach("finetune", [*argv, "--per-device-train-batch-size", "4", "--save-steps", "11"])
    assert record["config"].train_batch_size == 4 and record["config"].checkpointing_steps == 11  # overrides
    assert record["stages"][0].num_epochs == 5 and record["accelerator"].log_with == []  # from the file
    config.write_text("checkpointing_steps: 9\n")
    with pytest.raises(SystemExit, match="`checkpointing_steps` was renamed: use save_steps"):
        load_recipe("finetune").main(["--config", str(config)])


# ------------------------------------------------------------------------------------ hf-simo realign


@pytest.fixture(scope="module")
def sources(assets):
    """Three single-task checkpoints of the tiny encoder (heads random, encoder nudged: 'fine-tuned')."""
    from hf_simo import SimoModel
    from hf_simo.testing_utils import TINY_TASK_SPECS

    out = {}
    for index, (task, spec) in enumerate(TINY_TASK_SPECS.items()):
        torch.manual_seed(index)
        model = SimoModel.from_backbone(assets["encoder"], tasks={task: spec})
        with torch.no_grad():
            for param in model.dinov2.parameters():
                param.add_(0.01 * torch.randn_like(param))
        folder = assets["root"] / f"single-{task}"
        model.save_pretrained(folder)
        out[task] = str(folder)
    return out


def realign_argv(assets, sources, out, *extra):
    return [
        "--task_checkpoints", *(f"{t}={p}" for t, p in sources.items()),
        "--dataset", assets["dataset"], "--output_dir", str(out), "--alpha", "0.5", "--rank", "4",
        "--disable_tqdm", *extra,
    ]  # fmt: skip


REALIGN_OBSERVED = {  # representation mode: the record `fit` of realign.steps received
    "learning_rate": (["--learning_rate", "0.02"], lambda r: r["stages"][0].learning_rate == 0.02),
    "num_train_epochs": (["--num_train_epochs", "4"], lambda r: r["stages"][0].num_epochs == 4),
    "early_stopping_patience": (
        ["--early_stopping_patience", "2"],
        lambda r: r["stages"][0].early_stopping_patience == 2,
    ),
    "heldout_fraction": (["--heldout_fraction", "0.5"], lambda r: len(r["eval"]) == 6),
    "max_eval_samples": (["--max_eval_samples", "8"], lambda r: len(r["train"]) + len(r["eval"]) == 8),
    "per_device_train_batch_size": (
        ["--per_device_train_batch_size", "4"],
        lambda r: r["config"].train_batch_size == 4,
    ),
    "per_device_eval_batch_size": (["--per_device_eval_batch_size", "5"], lambda r: r["config"].eval_batch_size == 5),
    "gradient_accumulation_steps": (
        ["--gradient_accumulation_steps", "2"],
        lambda r: r["accelerator"].gradient_accumulation_steps == 2,
    ),
    "mixed_precision": (["--mixed_precision", "bf16"], lambda r: r["accelerator"].mixed_precision == "bf16"),
    "max_grad_norm": (["--max_grad_norm", "3.0"], lambda r: r["config"].max_grad_norm == 3.0),
    "weight_decay": (["--weight_decay", "0.3"], lambda r: r["stages"][0].weight_decay == 0.3),
    "warmup_ratio": (["--warmup_ratio", "0.2"], lambda r: r["stages"][0].warmup_ratio == 0.2),
    "early_stopping_threshold": (["--early_stopping_threshold", "0.1"], lambda r: r["stages"][0].min_delta == 0.1),
    "eval_steps": (["--eval_steps", "3"], lambda r: r["stages"][0].eval_steps == 3),
    "save_steps": (["--save_steps", "7"], lambda r: r["config"].checkpointing_steps == 7),
    "save_total_limit": (["--save_total_limit", "3"], lambda r: r["config"].checkpoints_total_limit == 3),
    "logging_steps": (["--logging_steps", "3"], lambda r: r["config"].logging_steps == 3),
    "stop_after_steps": (["--stop_after_steps", "2"], lambda r: r["config"].stop_after_steps == 2),
    "dataloader_num_workers": (["--dataloader_num_workers", "1"], lambda r: r["config"].dataloader_num_workers == 1),
    "seed": (["--seed", "4"], lambda r: r["config"].seed == 4),
    "report_to": (["--report_to", "jsonl"], lambda r: len(r["accelerator"].log_with) == 1),
}
HEAD_OBSERVED = {  # head mode: the keywords realign_heads received
    "head_learning_rate": (["--head_learning_rate", "0.02"], lambda k: k["learning_rate"] == 0.02),
    "head_epochs": (["--head_epochs", "4"], lambda k: k["epochs"] == 4),
    "head_weight_decay": (["--head_weight_decay", "0.001"], lambda k: k["weight_decay"] == 0.001),
    "max_grad_norm": (["--max_grad_norm", "3.0"], lambda k: k["max_grad_norm"] == 3.0),
    "warmup_ratio": (["--warmup_ratio", "0.2"], lambda k: k["warmup_ratio"] == 0.2),
    "per_device_train_batch_size": (["--per_device_train_batch_size", "4"], lambda k: k["batch_size"] == 4),
}
MERGE_OBSERVED = {  # the keywords search_and_merge received
    "merge_method": (["--merge_method", "ties"], lambda k: k["method"] == "ties"),
    "alpha": (["--alpha", "0.7"], lambda k: k["alpha"] == 0.7),
    "density": (["--density", "0.3"], lambda k: k["options"] == {"density": 0.3}),
    "scope": (["--scope", "tensor"], lambda k: k["options"] == {"scope": "tensor"}),
    "aggregate": (["--aggregate", "sum"], lambda k: k["options"] == {"aggregate": "sum"}),
    "dare_seed": (["--dare_seed", "3"], lambda k: k["options"] == {"seed": 3}),
    "rescale": (["--rescale", "false"], lambda k: k["options"] == {"rescale": False}),
    "sign_election": (["--sign_election", "true"], lambda k: k["options"] == {"sign_election": True}),
    "gamma": (["--gamma", "0.1"], lambda k: k["options"] == {"gamma": 0.1}),
    "tall_lambda": (["--tall_lambda", "0.5"], lambda k: k["options"] == {"tall_lambda": 0.5}),
    "min_agreement": (["--min_agreement", "3"], lambda k: k["options"] == {"min_agreement": 3}),
    "base_method": (["--base_method", "ties"], lambda k: k["options"] == {"base_method": "ties"}),
    "beta": (["--beta", "0.5"], lambda k: k["options"] == {"beta": 0.5}),
    "lines_alpha": (["--lines_alpha", "0.5"], lambda k: k["options"] == {"lines_alpha": 0.5}),
    "merge_options": (["--merge_options", '{"density": 0.2}'], lambda k: k["options"] == {"density": 0.2}),
    "base_model": (["--base_model", "/some/base"], lambda k: k["base"] == "/some/base"),
    "max_relative_distance": (["--max_relative_distance", "0.5"], lambda k: k["max_relative_distance"] == 0.5),
    "allow_distant": (["--allow_distant"], lambda k: k["max_relative_distance"] is None),
    "task_checkpoints": (None, lambda k: sorted(k["sources"]) == ["depth", "normals", "segmentation"]),
}
HUB_OBSERVED = {  # the HubOptions each place that reads sources received (see spy_source_reads)
    "token": (["--token", "hf_secret"], lambda hub: hub.token == "hf_secret"),
    "cache_dir": (["--cache_dir", "/tmp/no-hub-cache"], lambda hub: hub.cache_dir == "/tmp/no-hub-cache"),
    "local_files_only": (["--local_files_only"], lambda hub: hub.local_files_only is True),
    "allow_pickle": (["--allow_pickle"], lambda hub: hub.allow_pickle is True),
}
REALIGN_ELSEWHERE = {
    "mode": "test_realign_job.py (head, representation, none end to end)",
    "rank": "test_realign_job.py::test_representation_realignment_end_to_end (adapter rank in the record)",
    "adapter": "test_block_adapters.py (lora and relu variants)",
    "lora_target_modules": "test_block_adapters.py (standard LoRA targets)",
    "coefficients": "refused below (realign merges with one α)",
    "alpha_grid": "test_alpha_grid_reaches_the_search below",
    "output_dir": "test_realign_job.py (the outputs under --output_dir)",
    "overwrite_output_dir": "test_realign_identity_is_checked_like_training below",
    "keep_checkpoints": "test_keep_checkpoints_is_honoured_by_realign below",
    "num_threads": "the same TrainingRun as the recipes (test_finetune_options_reach_the_loop[num_threads])",
    "push_to_hub": "TrainingRun.push, as the recipes (test_recipes_train.py push test)",
    "hub_model_id": "TrainingRun.push, as the recipes",
    "hub_private_repo": "TrainingRun.push, as the recipes",
    "hub_revision": "test_push_options_reach_the_upload",
    "commit_message": "test_push_options_reach_the_upload",
    "create_pr": "test_push_options_reach_the_upload",
    "dataset": "every realign test reads --dataset",
    "max_train_samples": "refused with --task_checkpoints below; reaches the fine-tuning of default checkpoints",
    "augment": "refused with --task_checkpoints below; reaches the fine-tuning of default checkpoints",
    "test_samples": "test_realign_job.py (the embedded test split size)",
    "feature_cache_dtype": "test_realign_job.py::test_head_realignment_trains_on_a_mapped_cache_of_the_storage_dtype",
    **{k: WHOLE_RUNS[k] for k in ("dataset_path", "image_size", "train_samples", "validation_samples", "data_seed")},
    "dataset_cache_dir": WHOLE_RUNS["dataset_cache_dir"],
}


def test_every_realign_option_is_in_the_table():
    from hf_simo.cli import realign

    table = {**REALIGN_OBSERVED, **REALIGN_ELSEWHERE, **MERGE_OBSERVED, **HUB_OBSERVED}
    table.update({k: v for k, v in HEAD_OBSERVED.items() if k not in table})
    assert_every_field_covered(realign.COMMAND, table)


def spy_merge(monkeypatch):
    import hf_simo.merging

    def search_and_merge(sources, **kwargs):
        raise Reached({"sources": sources, **kwargs})

    monkeypatch.setattr(hf_simo.merging, "search_and_merge", search_and_merge)


def spy_source_reads(monkeypatch) -> dict:
    """Record the Hub options where the realign job reads sources (`parse_task_sources`, the single-task models of
    `SimoModel.from_task_source`, the run that pushes) at the names hf_simo looks up; the merge stops the run and
    records its own (`spy_merge`)."""
    import hf_simo.merging
    import hf_simo.training.run
    from hf_simo import SimoModel
    from hf_simo.hub import HubOptions

    seen: dict = {"from_task_source": []}
    parse = hf_simo.merging.parse_task_sources

    def parse_task_sources(values, hub=None):
        seen["parse_task_sources"] = hub
        return parse(values, hub=hub)

    original = SimoModel.from_task_source.__func__

    def from_task_source(cls, name_or_path, task, **kwargs):
        read = {f: kwargs[f] for f in ("token", "cache_dir", "local_files_only", "allow_pickle") if f in kwargs}
        seen["from_task_source"].append(HubOptions(**read))
        return original(cls, name_or_path, task, **kwargs)

    class TrainingRun(hf_simo.training.run.TrainingRun):
        def __init__(self, *args, hub=None, **kwargs):
            seen["run"] = hub
            super().__init__(*args, hub=hub, **kwargs)

    monkeypatch.setattr(hf_simo.merging, "parse_task_sources", parse_task_sources)
    monkeypatch.setattr(SimoModel, "from_task_source", classmethod(from_task_source))
    monkeypatch.setattr(hf_simo.training.run, "TrainingRun", TrainingRun)
    spy_merge(monkeypatch)
    return seen


def realign_hub_reads(assets, sources, out, monkeypatch, *values) -> list:
    """The HubOptions every source read of a realign run received: sources, three single-task models, the merge,
    the run (whose push takes the token)."""
    seen = spy_source_reads(monkeypatch)
    record = reach("realign", realign_argv(assets, sources, out, "--mode", "none", *values))
    reads = [seen["parse_task_sources"], *seen["from_task_source"], record["hub"], seen["run"]]
    assert len(reads) == 6 and all(hub is not None for hub in reads), reads
    return reads


@pytest.mark.parametrize("option", sorted(HUB_OBSERVED))
def test_hub_options_reach_every_source_read_of_realign(option, assets, sources, tmp_path, monkeypatch, capsys):
    values, check = HUB_OBSERVED[option]
    reads = realign_hub_reads(assets, sources, tmp_path / "r", monkeypatch, *values)
    assert all(check(hub) for hub in reads), (option, reads)
    # the token is passed through, never printed or stored (run_args.json and the rest of the run's folder)
    captured = capsys.readouterr()
    assert "hf_secret" not in captured.out + captured.err
    assert not [f for f in (tmp_path / "r").rglob("*") if f.is_file() and "hf_secret" in f.read_text(errors="replace")]


def test_realign_hub_defaults_are_what_the_table_changes(assets, sources, tmp_path, monkeypatch):
    reads = realign_hub_reads(assets, sources, tmp_path / "r", monkeypatch)
    assert [o for o, (_, check) in HUB_OBSERVED.items() if any(check(hub) for hub in reads)] == []


def test_hub_options_reach_the_default_single_task_checkpoints(assets, tmp_path, monkeypatch):
    """Without --task_checkpoints the job fine-tunes its own: the fine-tuning run reads its encoder with them."""
    import hf_simo.training.finetune

    def run_finetune(args, data, run, hub=None, push=None):
        raise Reached({"hub": hub, "task": args.task})

    monkeypatch.setattr(hf_simo.training.finetune, "run_finetune", run_finetune)
    argv = ["--dataset", assets["dataset"], "--output_dir", str(tmp_path / "r"), "--alpha", "0.5", "--disable_tqdm"]
    record = reach("realign", [*argv, "--token", "hf_secret", "--local_files_only", "--allow_pickle"])
    hub = record["hub"]
    assert (hub.token, hub.local_files_only, hub.allow_pickle) == ("hf_secret", True, True)


@pytest.mark.parametrize("option", sorted(MERGE_OBSERVED))
def test_merge_options_reach_the_merge(option, assets, sources, tmp_path, monkeypatch):
    spy_merge(monkeypatch)
    values, check = MERGE_OBSERVED[option]
    record = reach("realign", realign_argv(assets, sources, tmp_path / "r", "--mode", "none", *(values or [])))
    assert check(record), (option, record)


def test_alpha_grid_reaches_the_search(assets, sources, tmp_path, monkeypatch):
    spy_merge(monkeypatch)
    argv = [a for a in realign_argv(assets, sources, tmp_path / "r", "--mode", "none") if a not in ("--alpha", "0.5")]
    record = reach("realign", [*argv, "--alpha_grid", "0.2", "0.4"])
    assert record["alpha"] is None and list(record["alphas"]) == [0.2, 0.4]


@pytest.mark.parametrize("option", sorted(REALIGN_OBSERVED))
def test_run_options_reach_representation_realignment(option, assets, sources, tmp_path, monkeypatch):
    spy_fit(monkeypatch, "hf_simo.realign.steps")
    values, check = REALIGN_OBSERVED[option]
    record = reach("realign", realign_argv(assets, sources, tmp_path / "r", "--report_to", "none", *values))
    assert check(record), option


def test_realign_defaults_are_what_the_tables_change(assets, sources, tmp_path, monkeypatch):
    """Positive controls: without the options, every check of the realign tables fails."""
    spy_fit(monkeypatch, "hf_simo.realign.steps")
    record = reach("realign", realign_argv(assets, sources, tmp_path / "r", "--report_to", "none"))
    assert [o for o, (_, check) in REALIGN_OBSERVED.items() if check(record)] == []

    def realign_heads(model, batches, **kwargs):
        raise Reached(kwargs)

    monkeypatch.setattr("hf_simo.realign.steps.realign_heads", realign_heads)
    record = reach("realign", realign_argv(assets, sources, tmp_path / "h", "--mode", "head"))
    assert [o for o, (_, check) in HEAD_OBSERVED.items() if check(record)] == []
    spy_merge(monkeypatch)
    record = reach("realign", realign_argv(assets, sources, tmp_path / "m", "--mode", "none"))
    defaults = [o for o, (_, check) in MERGE_OBSERVED.items() if check(record)]
    assert defaults == ["task_checkpoints"]


@pytest.mark.parametrize("option", sorted(HEAD_OBSERVED))
def test_options_reach_head_realignment(option, assets, sources, tmp_path, monkeypatch):
    def realign_heads(model, batches, **kwargs):
        raise Reached(kwargs)

    monkeypatch.setattr("hf_simo.realign.steps.realign_heads", realign_heads)
    values, check = HEAD_OBSERVED[option]
    assert check(reach("realign", realign_argv(assets, sources, tmp_path / "h", "--mode", "head", *values)))


@pytest.mark.parametrize(
    ("mode", "option", "value"),
    [
        ("head", "--gradient_accumulation_steps", "2"),
        ("head", "--mixed_precision", "bf16"),
        ("head", "--eval_steps", "3"),
        ("head", "--save_steps", "3"),
        ("head", "--weight_decay", "0.5"),
        ("head", "--dataloader_num_workers", "1"),
        ("none", "--per_device_train_batch_size", "4"),
        ("none", "--max_grad_norm", "1.0"),
    ],
)
def test_options_a_mode_cannot_use_are_refused(mode, option, value, assets, sources, tmp_path):
    with pytest.raises(SystemExit, match=rf"{option} {value} does not apply to --mode {mode}"):
        load_recipe("realign").main(realign_argv(assets, sources, tmp_path / "x", "--mode", mode, option, value))
    assert not (tmp_path / "x").exists()


def test_options_realign_cannot_use_with_given_checkpoints_are_refused(assets, sources, tmp_path):
    recipe = load_recipe("realign")
    for extra, message in [
        (["--max_train_samples", "4"], "--max_train_samples applies only when realign trains its own"),
        (["--augment", "false"], "--augment applies only when realign trains its own"),
        (["--coefficients", "{}"], "--coefficients is a merge option"),
    ]:
        with pytest.raises(SystemExit, match=message):
            recipe.main(realign_argv(assets, sources, tmp_path / "x", "--mode", "none", *extra))


def test_a_bf16_launch_reaches_representation_realignment(assets, sources, tmp_path, monkeypatch):
    spy_fit(monkeypatch, "hf_simo.realign.steps")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    record = reach("realign", realign_argv(assets, sources, tmp_path / "r"))
    assert record["accelerator"].mixed_precision == "bf16"  # it was built with mixed_precision="no" before


def test_realign_identity_is_checked_like_training(assets, sources, tmp_path):
    recipe = load_recipe("realign")
    out = tmp_path / "run"
    argv = realign_argv(assets, sources, out, "--num_train_epochs", "2", "--per_device_train_batch_size", "4")
    outcome = recipe.main([*argv, "--save_steps", "1", "--stop_after_steps", "1"])
    assert outcome.interrupted and (out / "checkpoints").is_dir()
    with pytest.raises(SystemExit, match=r"holds a different run \(learning_rate: 0.001 -> 0.005\)"):
        recipe.main([*argv, "--learning_rate", "5e-3"])
    with pytest.raises(SystemExit, match=r"holds a different run \(per_device_eval_batch_size: 64 -> 8\)"):
        recipe.main([*argv, "--per_device_eval_batch_size", "8"])  # a run setting that realign ignored before
    outcome = recipe.main([*argv, "--learning_rate", "5e-3", "--overwrite_output_dir"])  # starts over
    assert not outcome.interrupted and (out / "model" / "config.json").is_file()
    assert json.loads((out / "run_args.json").read_text())["learning_rate"] == 5e-3


def test_keep_checkpoints_is_honoured_by_realign(assets, sources, tmp_path):
    out = tmp_path / "kept"
    load_recipe("realign").main(
        realign_argv(assets, sources, out, "--num_train_epochs", "1", "--per_device_train_batch_size", "4", "--keep_checkpoints")
    )  # fmt: skip
    assert any((out / "checkpoints").iterdir())
    out = tmp_path / "dropped"
    load_recipe("realign").main(
        realign_argv(assets, sources, out, "--num_train_epochs", "1", "--per_device_train_batch_size", "4")
    )
    assert not (out / "checkpoints").exists()
