"""Benchmark: one `SimoModel` pass for T tasks against T single-task models (each its own encoder and head).

    python benchmarks/inference.py                                   # DINOv2-S-like, 224 px, T = 3 linear heads
    python benchmarks/inference.py --encoder base --batch-sizes 1 4 --threads 2
    python benchmarks/inference.py --head dpt --tasks 3 --image-size 112 --output results.md

The point of a SIMO model at inference time: T tasks cost one encoder pass plus T heads, instead of T encoder passes.
With linear heads (a BatchNorm and a 1x1 convolution on the patch grid) the head cost is negligible, so the speed-up
over running the T single-task models one after the other should approach T; the target is >= 0.8 T. DPT heads are
much heavier (their cost grows with the image size), so the speed-up with DPT heads is lower.

Weights are random (speed does not depend on them): DINOv2-S-like = hidden 384, 12 blocks, 6 heads, patch 14;
DINOv2-B-like = hidden 768, 12 blocks, 12 heads, patch 14. Tasks cycle through semantic segmentation (13 classes),
depth and surface normals. Each measurement is the median over `--repeats` timed runs after `--warmup` runs, under
`torch.inference_mode`, the SIMO pass and the T single-task passes interleaved so that drifts in machine load hit
both. Prints a Markdown table with the machine, the thread count, the date and the versions.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time


ENCODERS = {
    "small": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "mlp_ratio": 4, "patch_size": 14},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "mlp_ratio": 4, "patch_size": 14},
}
TASK_CYCLE = (
    ("segmentation", {"kind": "semantic_segmentation", "num_outputs": 13}),
    ("depth", {"kind": "depth"}),
    ("normals", {"kind": "surface_normals"}),
)


def task_specs(num_tasks: int, head: str) -> dict[str, dict]:
    """`num_tasks` tasks cycling through segmentation, depth and normals, all with the same head type."""
    specs = {}
    for index in range(num_tasks):
        name, spec = TASK_CYCLE[index % len(TASK_CYCLE)]
        if index >= len(TASK_CYCLE):
            name = f"{name}_{index // len(TASK_CYCLE)}"
        specs[name] = {**spec, "head": head}
    return specs


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_call(fn, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", choices=sorted(ENCODERS), default="small")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--tasks", type=int, default=3, help="number of tasks T")
    parser.add_argument("--head", choices=["linear", "dpt"], default="linear")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", default=None, help="also write the Markdown table to this file")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.repeats < 1 or args.image_size < 14:
        parser.error("--tasks and --repeats must be >= 1, --image-size >= one patch (14)")

    import torch
    import transformers
    from tqdm.auto import tqdm
    from transformers import Dinov2Config

    from hf_simo import SimoConfig, SimoModel, __version__

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    device = torch.device(args.device)
    torch.manual_seed(0)
    backbone = Dinov2Config(**ENCODERS[args.encoder], image_size=args.image_size)
    specs = task_specs(args.tasks, args.head)
    multi = SimoModel(SimoConfig(backbone_config=backbone, tasks=specs)).eval().to(device)
    singles = [
        SimoModel(SimoConfig(backbone_config=backbone, tasks={name: spec})).eval().to(device)
        for name, spec in specs.items()
    ]
    encoder_params = sum(p.numel() for p in multi.dinov2.parameters())
    head_params = {name: sum(p.numel() for p in head.parameters()) for name, head in multi.heads.items()}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    rows = []
    bar = tqdm(args.batch_sizes, desc="batch sizes", disable=not sys.stderr.isatty())
    for batch_size in bar:
        pixels = torch.randn(batch_size, 3, args.image_size, args.image_size, device=device)

        def run_multi(pixels=pixels):
            multi(pixels)
            sync()

        def run_singles(pixels=pixels):
            for model in singles:
                model(pixels)
            sync()

        with torch.inference_mode():
            for _ in range(args.warmup):
                run_multi()
                run_singles()
            multi_times, single_times = [], []
            for _ in range(args.repeats):  # interleaved, so load drifts hit both
                multi_times += time_call(run_multi, 0, 1)
                single_times += time_call(run_singles, 0, 1)
        t_multi, t_single = statistics.median(multi_times), statistics.median(single_times)
        speedup = t_single / t_multi
        rows.append(
            {
                "batch": batch_size,
                "multi_ms": 1000 * t_multi,
                "single_ms": 1000 * t_single,
                "multi_ips": batch_size / t_multi,
                "single_ips": batch_size / t_single,
                "speedup": speedup,
                "ok": speedup >= 0.8 * args.tasks,
            }
        )

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    lines = [
        f"**Inference: one SIMO pass vs {args.tasks} single-task models** — DINOv2-{args.encoder[0].upper()}-like "
        f"encoder ({encoder_params / 1e6:.1f}M parameters), {args.tasks} {args.head} heads "
        f"({', '.join(f'{n} {p / 1e3:.1f}k' for n, p in head_params.items())} parameters), "
        f"{args.image_size}×{args.image_size} px, random weights",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, device {device}; torch threads: {threads}; "
        f"date: {date}; load average at the end (1/5/15 min): {load}; torch {torch.__version__}, "
        f"transformers {transformers.__version__}, hf_simo {__version__}; median of {args.repeats} runs after "
        f"{args.warmup} warm-up.",
        "",
        f"| Batch | SIMO pass (ms) | {args.tasks} single-task passes (ms) | SIMO (img/s, all tasks) "
        f"| single-task (img/s, all tasks) | Speed-up | ≥ 0.8·T = {0.8 * args.tasks:.1f} |",
        "|:-:|--:|--:|--:|--:|--:|:-:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['batch']} | {row['multi_ms']:.1f} | {row['single_ms']:.1f} | {row['multi_ips']:.2f} "
            f"| {row['single_ips']:.2f} | {row['speedup']:.2f}× | {'yes' if row['ok'] else 'no'} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
