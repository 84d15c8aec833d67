"""Training and data-loading throughput of the recipes' training loop, as a Markdown table.

Measures, on the embedded benchmark (64-pixel NYUv2-like preset) with the default small encoder architecture:

- loader samples/s: one epoch of the `with_format("torch")` training set through a `DataLoader` (default collate),
  without and with the batched random scale-crop augmentation the recipes apply;
- training samples/s through `hf_simo.training.fit` (Accelerate, AdamW, one-cycle, clipping): stage 1 (heads only,
  encoder frozen), stage 2 (everything) and the 3-task MTL stage 2, with 1 and 2 torch threads in one process;
- the same stage-2 loop on 2 processes (gloo, 1 thread each) launched with
  `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2` (GPU machines: drop the variable).

Each training figure is the median of `--repeats` timed runs of `--steps` optimizer steps after a warm-up run.

    python benchmarks/train_throughput.py                  # everything (about 4 minutes on 2 CPU cores)
    python benchmarks/train_throughput.py --steps 20 --repeats 1 --skip_multiprocess
"""

from __future__ import annotations

import os


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch, as in the recipes

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_data(args):
    from hf_simo.data import load_training_data

    return load_training_data("nyuv2", image_size=args.image_size, train_samples=args.train_samples)


def loader_throughput(train, batch_size: int, augment: bool) -> float:
    from torch.utils.data import DataLoader

    from hf_simo.data import get_task_specs, make_augmentation

    transform = make_augmentation(get_task_specs(train)) if augment else None
    generator = torch.Generator().manual_seed(0)
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=True)
    start, count = time.perf_counter(), 0
    for batch in loader:
        if transform is not None:
            batch = transform(batch, generator)
        count += batch["image"].shape[0]
    return count / (time.perf_counter() - start)


def train_throughput(args, data, mode: str, output_dir: str) -> float:
    """Samples/s (all processes) of `args.steps` optimizer steps of `mode` (stage1, stage2 or mtl) through `fit`."""
    from transformers import Dinov2Model

    from hf_simo import SimoModel
    from hf_simo.data import get_task_specs, make_augmentation
    from hf_simo.training import EncoderArguments, Stage, TrainerConfig, fit, make_accelerator, make_simo_loss_fn
    from hf_simo.training.pretrain import encoder_config

    specs = get_task_specs(data["train"])
    tasks = list(specs) if mode == "mtl" else ["segmentation"]
    torch.manual_seed(0)
    encoder = Dinov2Model(encoder_config(EncoderArguments(), args.image_size))
    model = SimoModel.from_backbone(encoder, tasks={t: specs[t] for t in tasks})
    train = data["train"].select_columns(["image", *tasks])
    accelerator = make_accelerator(output_dir, report_to=None)
    stage = Stage(
        mode,
        trainable=["heads."] if mode == "stage1" else [""],
        learning_rate=1e-3,
        num_epochs=1000,
        max_steps=args.steps,
    )
    config = TrainerConfig(
        output_dir=output_dir, train_batch_size=args.batch_size, progress_bar=False, checkpointing_steps=None
    )
    accelerator.wait_for_everyone()
    start = time.perf_counter()
    fit(
        accelerator,
        model,
        [stage],
        train,
        None,
        make_simo_loss_fn(model.config.tasks),
        config,
        train_transform=make_augmentation({t: specs[t] for t in tasks}),
    )
    accelerator.wait_for_everyone()
    elapsed = time.perf_counter() - start
    return args.steps * args.batch_size * accelerator.num_processes / elapsed


def measure(args, data, mode: str) -> list[float]:
    values = []
    for repeat in range(args.repeats + 1):  # the first run warms up (allocator, oneDNN kernels) and is dropped
        with tempfile.TemporaryDirectory() as tmp:
            value = train_throughput(args, data, mode, tmp)
        if repeat:
            values.append(value)
    return values


def worker(args) -> None:
    """Run inside `accelerate launch`: measure stage 2 and print one JSON line on the main process."""
    from accelerate import PartialState

    torch.set_num_threads(args.threads)
    data = build_data(args)
    values = measure(args, data, "stage2")
    state = PartialState()
    if state.is_main_process:
        print("RESULT " + json.dumps({"processes": state.num_processes, "values": values}), flush=True)


def launch_two_processes(args) -> list[float] | None:
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--main_process_port", str(args.port), __file__, "--worker", "--threads", "1",
        "--steps", str(args.steps), "--repeats", str(args.repeats), "--batch_size", str(args.batch_size),
        "--image_size", str(args.image_size), "--train_samples", str(args.train_samples),
    ]  # fmt: skip
    for attempt in range(2):  # a known gloo teardown abort may end a finished run; retry once
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT ") :])["values"]
        print(f"2-process run failed (attempt {attempt + 1}, exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return None


def fmt(values: list[float] | None) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.0f}"
    return f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per timed run")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per setting (after one warm-up)")
    parser.add_argument("--batch_size", type=int, default=16, help="per-process batch size")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--train_samples", type=int, default=2000)
    parser.add_argument("--skip_multiprocess", action="store_true")
    parser.add_argument("--output", help="also write the table to this file")
    parser.add_argument("--port", type=int, default=29533)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    data = build_data(args)
    rows = []
    torch.set_num_threads(1)
    loader_plain = [loader_throughput(data["train"], args.batch_size, False) for _ in range(2)]
    loader_aug = [loader_throughput(data["train"], args.batch_size, True) for _ in range(2)]
    rows.append(("loader (with_format torch + collate)", 1, 1, fmt(loader_plain)))
    rows.append(("loader + batched scale-crop augmentation", 1, 1, fmt(loader_aug)))
    for mode, label in [("stage1", "train stage 1 (heads, encoder frozen)"), ("stage2", "train stage 2 (all)"),
                        ("mtl", "train MTL stage 2 (3 heads)")]:  # fmt: skip
        for threads in (1, 2):
            torch.set_num_threads(threads)
            rows.append((label, 1, threads, fmt(measure(args, data, mode))))
    if not args.skip_multiprocess:
        rows.append(("train stage 2 (all)", 2, 1, fmt(launch_two_processes(args))))

    from hf_simo.training import EncoderArguments

    enc = EncoderArguments()
    lines = [
        "| setting | processes | torch threads / process | samples/s, median (range) |",
        "|---|:-:|:-:|:-:|",
        *[f"| {name} | {procs} | {threads} | {value} |" for name, procs, threads, value in rows],
    ]
    header = (
        f"Machine: {cpu_name()}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}; "
        f"torch {torch.__version__}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; "
        f"date {datetime.datetime.now().isoformat(timespec='minutes')}.\n"
        f"Model: DINOv2 hidden {enc.hidden_size}, {enc.num_hidden_layers} blocks, patch {enc.patch_size}, "
        f"{args.image_size}px images, linear heads; batch {args.batch_size} per process; {args.steps} steps per run, "
        f"{args.repeats} runs after a warm-up.\n"
    )
    table = header + "\n" + "\n".join(lines) + "\n"
    print(table)
    if args.output:
        Path(args.output).write_text(table)


if __name__ == "__main__":
    main()
