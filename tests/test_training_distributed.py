"""Two real CPU processes (gloo) through `accelerate launch`: training under DDP, exact sharded evaluation, and the
finetune recipe end to end. Slow (process start-up dominates): run with `pytest -m slow`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from hf_simo import SimoModel
from hf_simo.testing_utils import save_tiny_dataset, save_tiny_encoder
from hf_simo.training.run import read_summary


pytestmark = pytest.mark.slow

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

WORKER = textwrap.dedent(
    """
    import json, sys
    import torch
    from datasets import load_from_disk
    from hf_simo import SimoModel
    from hf_simo.metrics import MultiTaskMetrics
    from hf_simo.training import evaluate, make_accelerator, make_eval_loader
    from hf_simo.training import make_simo_loss_fn

    model_dir, data_dir, out = sys.argv[1:4]
    torch.set_num_threads(1)
    accelerator = make_accelerator(out, report_to=None)
    model = SimoModel.from_pretrained(model_dir).to(accelerator.device)  # keeps unused parameters frozen for DDP
    validation = load_from_disk(data_dir)["validation"].with_format("torch").select_columns(
        ["image", *model.task_names]
    )
    metrics = MultiTaskMetrics(model.config.task_specs)
    loader = make_eval_loader(validation, accelerator, batch_size=3)
    result = evaluate(accelerator, model, loader, make_simo_loss_fn(model.config.tasks), metrics)
    seen = torch.tensor([len(loader.dataset)])
    seen = accelerator.gather(seen).tolist()

    # both stages train under DDP: the processes see different batches but must end with identical parameters
    from hf_simo.training import Stage, TrainerConfig, fit

    train = load_from_disk(data_dir)["train"].with_format("torch").select_columns(["image", *model.task_names])
    stages = [
        Stage("heads", trainable=["heads."], learning_rate=1e-2, num_epochs=1),
        Stage("full", trainable=[""], learning_rate=1e-3, num_epochs=1),
    ]
    before = torch.stack([p.detach().double().sum() for p in model.dinov2.parameters()])
    config = TrainerConfig(output_dir=out + "/fit", train_batch_size=4, progress_bar=False)
    fit(accelerator, model, stages, train, validation, make_simo_loss_fn(model.config.tasks), config)
    sums = torch.stack([p.detach().double().sum() for p in model.parameters()])
    gathered = accelerator.gather(sums[None]).tolist()
    result["params_in_sync"] = gathered[0] == gathered[1]
    result["encoder_moved"] = bool((torch.stack([p.detach().double().sum() for p in model.dinov2.parameters()]) != before).any())
    if accelerator.is_main_process:
        import os
        os.makedirs(out, exist_ok=True)
        json.dump({"processes": accelerator.num_processes, "seen": seen, **result}, open(out + "/result.json", "w"))
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(args: list[str], tmp_path: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """`ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 ...`, retried once after the known
    gloo teardown abort (SIGABRT once training finished)."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    for attempt in range(2):
        command = [
            sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--main_process_port", str(free_port()), *args,
        ]  # fmt: skip
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
        if proc.returncode == 0:
            return proc
        aborted = "SIGABRT" in proc.stderr or "terminate called" in proc.stderr or proc.returncode in (-6, 134)
        if not aborted or attempt == 1:
            raise AssertionError(f"launch failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    raise AssertionError("unreachable")


def test_two_process_finetune_and_exact_sharded_evaluation(tmp_path):
    data = save_tiny_dataset(tmp_path / "data", train=32, validation=13)  # 13: shards of 7 and 6, no padding
    encoder = save_tiny_encoder(tmp_path / "encoder")
    out = tmp_path / "run"

    def finetune(output_dir: Path, *extra: str) -> None:
        launch(
            [
                str(RECIPES / "finetune.py"),
                "--dataset", str(data), "--model_name_or_path", str(encoder), "--task", "segmentation",
                "--output_dir", str(output_dir), "--per_device_train_batch_size", "4",
                "--per_device_eval_batch_size", "4", "--stage1_epochs", "1", "--stage2_epochs", "2",
                "--disable_tqdm", "--save_steps", "3", *extra,
            ],
            tmp_path,
        )  # fmt: skip

    finetune(out)
    # interrupted in stage 2 (after the checkpoint of step 3 and the stage-end one of step 4), then resumed
    finetune(tmp_path / "resumed", "--stop_after_steps", "7")
    assert not (tmp_path / "resumed" / "model").exists()
    finetune(tmp_path / "resumed")
    from safetensors.torch import load_file

    expected = load_file(out / "model" / "model.safetensors")
    got = load_file(tmp_path / "resumed" / "model" / "model.safetensors")
    assert all(torch.equal(expected[k], got[k]) for k in expected)

    summary = read_summary(out)
    assert summary["num_processes"] == 2
    # 32 samples / (2 processes x 4) = 4 steps per epoch
    assert summary["stage_steps"] == {"stage1_heads": 4, "stage2_full": 8}
    model = SimoModel.from_pretrained(out / "model")
    assert summary["encoder_drift"]["tau_ratio"] > 0

    script = tmp_path / "evaluate_worker.py"
    script.write_text(WORKER)
    launch([str(script), str(out / "model"), str(data), str(tmp_path / "eval")], tmp_path)
    distributed = json.loads((tmp_path / "eval" / "result.json").read_text())
    assert distributed["processes"] == 2 and distributed["seen"] == [7, 6]
    assert distributed["params_in_sync"] and distributed["encoder_moved"]

    # the same evaluation on one process
    from datasets import load_from_disk

    from hf_simo.metrics import MultiTaskMetrics
    from hf_simo.training import evaluate, make_accelerator, make_eval_loader, make_simo_loss_fn

    accelerator = make_accelerator(tmp_path / "single", report_to=None)
    validation = load_from_disk(str(data))["validation"].with_format("torch").select_columns(["image", "segmentation"])
    metrics = MultiTaskMetrics(model.config.task_specs)
    single = evaluate(
        accelerator,
        model,
        make_eval_loader(validation, accelerator, 5),
        make_simo_loss_fn(model.config.tasks),
        metrics,
    )
    assert distributed["loss"] == pytest.approx(single["loss"], rel=1e-6)
    for task, values in single["metrics"].items():
        for name, value in values.items():
            assert distributed["metrics"][task][name] == pytest.approx(value, rel=1e-6, abs=1e-9), (task, name)
    assert torch.isfinite(torch.tensor(distributed["loss"]))
