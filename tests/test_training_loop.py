"""The generic training loop: learning, stage freezing, exact resume, atomic checkpoints, exact sharded evaluation."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from datasets import Dataset
from transformers import Dinov2Config, Dinov2Model

from hf_simo import SimoModel
from hf_simo.data.transforms import make_augmentation
from hf_simo.metrics import MultiTaskMetrics
from hf_simo.testing_utils import TINY_ENCODER, TINY_TASK_SPECS, make_tiny_dataset
from hf_simo.training import (
    Stage,
    TrainerConfig,
    TrainingError,
    evaluate,
    fit,
    latest_checkpoint,
    list_checkpoints,
    make_accelerator,
    make_eval_loader,
    make_simo_loss_fn,
    read_jsonl,
    shard_bounds,
    shard_dataset,
)
from hf_simo.training.checkpoints import TRAINER_STATE_NAME


DPT_TINY = {"fusion_hidden_size": 16}


@pytest.fixture(scope="module")
def tiny_data():
    return make_tiny_dataset(train=32, validation=12)


def tiny_simo(tasks=("segmentation", "depth"), dpt=("depth",), seed=0) -> SimoModel:
    torch.manual_seed(seed)
    encoder = Dinov2Model(Dinov2Config(**TINY_ENCODER))
    specs = {
        t: {**TINY_TASK_SPECS[t], **({"head": "dpt", "head_options": DPT_TINY} if t in dpt else {})} for t in tasks
    }
    torch.manual_seed(seed + 1)
    return SimoModel.from_backbone(encoder, tasks=specs)


def two_stages(epochs=(2, 2), patience=None) -> list[Stage]:
    return [
        Stage("heads", trainable=["heads."], learning_rate=1e-2, num_epochs=epochs[0]),
        Stage(
            "full",
            trainable=[""],
            frozen=["dinov2.embeddings.mask_token"],
            learning_rate=2e-3,
            num_epochs=epochs[1],
            early_stopping_patience=patience,
        ),
    ]


def run_fit(model, data, output_dir, stages=None, accumulation=1, stop=None, augment=True, **config):
    tasks = model.task_names
    accelerator = make_accelerator(output_dir, gradient_accumulation_steps=accumulation, report_to="jsonl")
    specs = {t: TINY_TASK_SPECS[t] for t in tasks}
    trainer_config = TrainerConfig(
        output_dir=output_dir,
        train_batch_size=8,
        eval_batch_size=5,
        progress_bar=False,
        stop_after_steps=stop,
        **config,
    )
    return fit(
        accelerator,
        model,
        stages or two_stages(),
        data["train"].select_columns(["image", *tasks]),
        data["validation"].select_columns(["image", *tasks]),
        make_simo_loss_fn(model.config.tasks),
        trainer_config,
        train_transform=make_augmentation(specs) if augment else None,
        metrics=MultiTaskMetrics(model.config.task_specs),
    )


def encoder_state(model: SimoModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.dinov2.state_dict().items()}


def test_shard_bounds_partition_without_padding():
    for num in range(0, 14):
        for shards in range(1, 5):
            bounds = [shard_bounds(num, shards, i) for i in range(shards)]
            covered = [i for start, end in bounds for i in range(start, end)]
            assert covered == list(range(num))  # disjoint, complete, in order: no duplicates, no padding
            sizes = [end - start for start, end in bounds]
            assert max(sizes) - min(sizes) <= 1
            dataset = Dataset.from_dict({"x": list(range(num))})
            for i, (start, end) in enumerate(bounds):
                if num >= shards:  # datasets refuses empty shards; the loop refuses sets smaller than the processes
                    assert dataset.shard(shards, i, contiguous=True)["x"] == list(range(start, end))
                assert [row["x"] for row in shard_dataset(dataset, shards, i)] == list(range(start, end))


def test_two_stage_training_learns_and_freezes_the_encoder_in_stage_one(tiny_data, tmp_path):
    model = tiny_simo()
    accelerator = make_accelerator(tmp_path / "probe", report_to=None)
    loader = make_eval_loader(
        tiny_data["validation"].select_columns(["image", "segmentation", "depth"]), accelerator, 6
    )
    before = evaluate(accelerator, model, loader, make_simo_loss_fn(model.config.tasks))["loss"]
    initial = encoder_state(model)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    heads_before = {k: v.clone() for k, v in model.heads.state_dict().items()}
    snapshots = []

    accelerator = make_accelerator(tmp_path / "run", report_to="jsonl")
    result = fit(
        accelerator,
        model,
        two_stages(epochs=(2, 3)),
        tiny_data["train"].select_columns(["image", "segmentation", "depth"]),
        tiny_data["validation"].select_columns(["image", "segmentation", "depth"]),
        make_simo_loss_fn(model.config.tasks),
        TrainerConfig(output_dir=tmp_path / "run", train_batch_size=8, eval_batch_size=6, progress_bar=False),
        metrics=MultiTaskMetrics(model.config.task_specs),
        on_evaluate=lambda record: snapshots.append((record["stage"], encoder_state(model))),
    )
    assert [s for s, _ in snapshots] == ["heads", "heads", "full", "full", "full"]
    for stage, state in snapshots:
        same = all(torch.equal(state[k], initial[k]) for k in initial)
        assert same == (stage == "heads"), stage
    assert any(not torch.equal(v, heads_before[k]) for k, v in model.heads.state_dict().items())
    # parameters the model freezes itself (mask_token, DPT's unused fusion layer) are never trained;
    # the requires_grad flags are those of before fit
    assert torch.equal(model.dinov2.embeddings.mask_token, initial["embeddings.mask_token"])
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    frozen_dpt = [n for n, flag in flags.items() if not flag and n.startswith("heads.")]
    assert frozen_dpt and all(torch.equal(model.state_dict()[n], heads_before[n[len("heads.") :]]) for n in frozen_dpt)
    after = evaluate(accelerator, model, loader, make_simo_loss_fn(model.config.tasks))["loss"]
    assert after < 0.8 * before, (before, after)
    assert result.history[-1]["eval_metrics"]["segmentation"]["miou"] > 0
    assert not result.interrupted
    # one stage-end checkpoint per stage, the newest last; trackers wrote the evaluations
    assert [
        json.loads((c / TRAINER_STATE_NAME).read_text())["stage_index"] for c in list_checkpoints(tmp_path / "run")
    ] == [0, 1]
    records = read_jsonl(tmp_path / "run" / "logs" / "train" / "metrics.jsonl")
    assert any("full/eval_loss" in r for r in records)


# stop 4 (mid stage 2, with scheduler and optimizer state) in the default suite; the stage boundaries in `-m slow`
@pytest.mark.parametrize("stop", [pytest.param(1, marks=pytest.mark.slow), 4, pytest.param(7, marks=pytest.mark.slow)])
def test_resume_after_interruption_equals_uninterrupted_run(tiny_data, tmp_path, stop):
    """Gradient accumulation, augmentation and DPT dropout included. 4 batches of 8 per epoch, 2 per optimizer step:
    2 steps per epoch, stage 1 = steps 1-4, stage 2 = steps 5-8. Interruptions mid-epoch in stage 1, at the stage
    boundary (4) and at the end of an epoch of stage 2, after a periodic checkpoint at step 5."""
    reference = run_fit(tiny_simo(), tiny_data, tmp_path / "ref", accumulation=2, checkpointing_steps=5)
    first = run_fit(tiny_simo(), tiny_data, tmp_path / "int", accumulation=2, checkpointing_steps=5, stop=stop)
    assert first.interrupted and first.state.global_step == stop
    resumed = run_fit(tiny_simo(seed=5), tiny_data, tmp_path / "int", accumulation=2, checkpointing_steps=5)
    assert resumed.resumed_from is not None and not resumed.interrupted
    expected, got = reference.model.state_dict(), resumed.model.state_dict()
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert resumed.history == reference.history


class Scale(torch.nn.Module):
    """y = w x: training pulls w to 1, the validation target is w = 0.3, so validation improves then worsens."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.w * x


def scale_loss(model, batch):
    from hf_simo.training import StepOutput

    per_sample = (model(batch["x"]) - batch["y"]).pow(2)
    return StepOutput(loss=per_sample.mean(), sample_losses=per_sample.detach())


def test_early_stopping_stops_and_restores_the_best_weights(tmp_path):
    train = [{"x": torch.tensor(1.0), "y": torch.tensor(1.0)} for _ in range(8)]
    validation = [{"x": torch.tensor(1.0), "y": torch.tensor(0.3)} for _ in range(4)]
    model = Scale()
    accelerator = make_accelerator(tmp_path, report_to=None)
    stage = Stage("fit", learning_rate=0.1, num_epochs=20, early_stopping_patience=2, weight_decay=0.0)
    config = TrainerConfig(output_dir=tmp_path, train_batch_size=4, progress_bar=False)
    result = fit(accelerator, model, [stage], train, validation, scale_loss, config)
    losses = [r["eval_loss"] for r in result.history]
    assert result.history[-1]["early_stop"] and len(losses) < 20
    assert losses[-1] > min(losses) and losses[-2] > min(losses)  # two evaluations without improvement
    assert (model.w.item() - 0.3) ** 2 == pytest.approx(min(losses), rel=1e-5)  # the best weights are back


def test_frozen_modules_keep_their_batchnorm_statistics(tiny_data, tmp_path):
    model = tiny_simo(tasks=("segmentation",), dpt=())
    before = {k: v.clone() for k, v in model.heads.state_dict().items()}
    stages = [Stage("encoder_only", trainable=["dinov2."], frozen=["dinov2.embeddings.mask_token"], num_epochs=1)]
    run_fit(model, tiny_data, tmp_path / "run", stages=stages)
    for key, value in model.heads.state_dict().items():
        assert torch.equal(value, before[key]), key  # running_mean/var included: frozen means frozen


def test_incomplete_checkpoints_are_never_resumed(tiny_data, tmp_path):
    run_fit(tiny_simo(), tiny_data, tmp_path, stop=3, checkpointing_steps=2)
    good = latest_checkpoint(tmp_path)
    assert good is not None and (good / TRAINER_STATE_NAME).is_file()
    # a crash during a later save leaves a temporary folder, or a folder without its state file
    (tmp_path / "checkpoints" / ".tmp-checkpoint-000099").mkdir()
    half = tmp_path / "checkpoints" / "checkpoint-000098"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"")
    assert latest_checkpoint(tmp_path) == good
    resumed = run_fit(tiny_simo(), tiny_data, tmp_path, checkpointing_steps=2)
    assert resumed.resumed_from == str(good)
    assert not (tmp_path / "checkpoints" / ".tmp-checkpoint-000099").exists()  # cleaned up


def test_resume_refuses_a_checkpoint_of_other_stages(tiny_data, tmp_path):
    run_fit(tiny_simo(), tiny_data, tmp_path, stop=2)
    with pytest.raises(TrainingError, match="stages"):
        run_fit(tiny_simo(), tiny_data, tmp_path, stages=[Stage("other", num_epochs=1)])


def test_sharded_evaluation_equals_single_process_evaluation(tiny_data, tmp_path):
    """Each shard evaluated on its own (any batch size), its metric states merged: same loss and metrics."""
    model = tiny_simo(tasks=("segmentation", "depth", "normals"), dpt=())
    model.eval()
    tasks = model.task_names
    validation = tiny_data["validation"].select_columns(["image", *tasks])
    loss_fn = make_simo_loss_fn(model.config.tasks)
    accelerator = make_accelerator(tmp_path, report_to=None)
    full_metrics = MultiTaskMetrics(model.config.task_specs)
    full = evaluate(accelerator, model, make_eval_loader(validation, accelerator, 12), loss_fn, full_metrics)

    for num_shards, batch_size in [(2, 4), (3, 5), (5, 1)]:
        combined = MultiTaskMetrics(model.config.task_specs)
        loss_sum, total = 0.0, 0
        for index in range(num_shards):
            shard = shard_dataset(validation, num_shards, index)
            metrics = MultiTaskMetrics(model.config.task_specs)
            loader = torch.utils.data.DataLoader(shard, batch_size=batch_size)
            part = evaluate(accelerator, model, loader, loss_fn, metrics)
            loss_sum += part["loss"] * len(shard)
            total += len(shard)
            combined.merge(metrics)
        assert total == len(validation)
        assert loss_sum / total == pytest.approx(full["loss"], rel=1e-9)
        results = combined.compute()
        for task, values in full["metrics"].items():
            for name, value in values.items():
                assert results[task][name] == pytest.approx(value, rel=1e-9, abs=1e-12), (num_shards, task, name)


def test_fit_rejects_bad_configurations(tiny_data, tmp_path):
    model = tiny_simo(tasks=("depth",), dpt=())
    with pytest.raises(TrainingError, match="no trainable parameters"):
        run_fit(model, tiny_data, tmp_path / "a", stages=[Stage("none", trainable=["nothing."])])
    with pytest.raises(TrainingError, match="no full batch"):
        run_fit(
            model,
            {"train": tiny_data["train"].select(range(4)), "validation": tiny_data["validation"]},
            tmp_path / "b",
        )
    with pytest.raises(TrainingError, match="unique"):
        run_fit(model, tiny_data, tmp_path / "c", stages=[Stage("x"), Stage("x")])


def test_trackers_are_optional(tmp_path, caplog):
    from hf_simo.training import JSONLTracker, resolve_trackers

    assert resolve_trackers("none", tmp_path, "run") == [] and resolve_trackers(None, tmp_path, "run") == []
    trackers = resolve_trackers("jsonl,tensorboard", tmp_path, "run")
    assert isinstance(trackers[0], JSONLTracker)
    try:
        import tensorboard  # noqa: F401

        assert trackers[1:] == ["tensorboard"]
    except ImportError:
        assert trackers[1:] == [] and "not installed" in caplog.text
    with pytest.raises(ValueError, match="unknown tracker"):
        resolve_trackers("jsnol", tmp_path, "run")


def test_make_accelerator_refuses_silent_single_process_launches(tmp_path, monkeypatch):
    make_accelerator(tmp_path, report_to=None)  # the process state exists: no process group is attempted below
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="ACCELERATE_USE_CPU"):
        make_accelerator(tmp_path, report_to=None)
    monkeypatch.delenv("WORLD_SIZE")
    assert os.environ.get("WORLD_SIZE") is None


@pytest.fixture
def fresh_accelerate_state():
    """Mixed precision is fixed per process by Accelerate's shared state: reset it around the test."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


def test_bf16_autocast_training_keeps_fp32_weights(tiny_data, tmp_path, fresh_accelerate_state):
    model = tiny_simo(tasks=("segmentation",), dpt=())
    accelerator = make_accelerator(tmp_path, mixed_precision="bf16", report_to=None)
    assert accelerator.mixed_precision == "bf16"
    seen = []
    activations = []
    model.dinov2.encoder.layer[0].mlp.fc1.register_forward_hook(lambda m, i, o: activations.append(o.dtype))

    def loss_fn(module, batch):
        out = make_simo_loss_fn(model.config.tasks)(module, batch)
        seen.append(out.loss.dtype)
        return out

    result = fit(
        accelerator,
        model,
        two_stages(epochs=(1, 1)),
        tiny_data["train"].select_columns(["image", "segmentation"]),
        tiny_data["validation"].select_columns(["image", "segmentation"]),
        loss_fn,
        TrainerConfig(output_dir=tmp_path, train_batch_size=8, progress_bar=False),
    )
    assert all(torch.isfinite(torch.tensor(r["eval_loss"])) for r in result.history)
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    assert seen and all(dtype == torch.float32 for dtype in seen)  # losses are computed in float32
    assert activations and all(dtype == torch.bfloat16 for dtype in activations)  # matmuls ran in bf16
    with pytest.raises(ValueError, match="fp16"):
        make_accelerator(tmp_path, mixed_precision="fp16", cpu=True, report_to=None)


@pytest.mark.parametrize("total_steps", [1, 2, 19, 20, 21, 40, 200])
def test_one_cycle_schedule_survives_a_one_step_warmup(total_steps):
    """torch's OneCycleLR divides by zero when warmup_ratio * total_steps == 1 (20 steps at 5%)."""
    from hf_simo.training import one_cycle_schedule

    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    schedule = one_cycle_schedule(optimizer, 1.0, total_steps, 0.05)
    rates = []
    for _ in range(total_steps):
        optimizer.step()
        schedule.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert all(math.isfinite(r) for r in rates)
    if total_steps >= 20:
        assert max(rates) > rates[-1] and max(rates) <= 1.0 + 1e-9  # warms up, then anneals
