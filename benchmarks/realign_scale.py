"""Re-alignment that scales out (issue 12 item 5): the feature cache's size against its formula, the memory it takes
to build and to train on (streamed to disk and memory-mapped, or held in memory), and the α search and feature cache
shared out across processes (`accelerate launch`, gloo on CPU) against one process.

    python benchmarks/realign_scale.py                                   # small encoder, 32 images, 1 vs 2 processes
    python benchmarks/realign_scale.py --encoder base --samples 16 --parts size      # ViT-B 224 px, cache size only

Encoders (random weights) as in `realign_speed.py`: `demo` (hidden 128, 4 blocks, 64 px), `small` (DINOv2-S-shaped,
112 px), `base` (DINOv2-B-shaped, 224 px). Each configuration runs in a fresh process, so its peak RSS (VmHWM) is
its own. On a shared machine the wall times of 1 and 2 processes compete with other work: the CPU seconds of each
process are printed beside them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from realign_speed import ENCODERS, TASKS, batches, build  # noqa: E402


ALPHAS = [0.2, 0.5, 0.8]


def peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cache_child(encoder: str, samples: int, where: str, dtype: str, folder: str) -> dict:
    """Build one cache (`where`: disk or memory), then one pass over it in batches of 16 rows; peak RSS of each."""
    import torch

    from hf_simo.realign import compute_feature_cache

    model, size = build(encoder)
    data = batches(size, samples, 8)
    before = peak_rss_mib()
    start = time.perf_counter()
    kwargs = {"data_fingerprint": f"bench-{samples}", "cache_dir": folder} if where == "disk" else {}
    cache = compute_feature_cache(model, data, dtype=dtype, **kwargs)
    seconds = time.perf_counter() - start
    built = peak_rss_mib()
    del data
    for index in torch.randperm(len(cache)).split(16):  # what an epoch of head re-alignment reads
        cache.encoding(index)
    tensors = [*cache.features.values(), *cache.labels.values()]
    return {
        "seconds": seconds,
        "rss_before_mib": before,
        "rss_built_mib": built,
        "rss_after_epoch_mib": peak_rss_mib(),
        "tensor_bytes": sum(t.numel() * t.element_size() for t in tensors),
        "label_bytes_per_sample": sum(t[0].numel() * t.element_size() for t in cache.labels.values()),
        "grid": list(cache.grid),
        "layers": len(cache.features),
        "hidden": model.config.backbone_config.hidden_size,
        "file_bytes": sum(p.stat().st_size for p in Path(folder).glob("features-*.safetensors")),
    }


def make_sources(encoder: str, folder: Path) -> list[str]:
    """Three single-task checkpoints of one random encoder (encoder nudged, heads random)."""
    import torch

    from hf_simo import SimoModel

    model, _ = build(encoder)
    model.dinov2.save_pretrained(folder / "base")
    tasks = []
    for index, (task, spec) in enumerate(TASKS.items()):
        torch.manual_seed(index)
        single = SimoModel.from_backbone(str(folder / "base"), tasks={task: spec})
        with torch.no_grad():
            for param in single.dinov2.parameters():
                param.add_(1e-3 * torch.randn_like(param))
        single.save_pretrained(folder / task)
        tasks.append(f"{task}={folder / task}")
    return tasks


def shard_child(encoder: str, samples: int, folder: str, tasks: list[str]) -> dict | None:
    """Under `accelerate launch` (or alone): α search and feature cache on this process's share; wall and CPU."""
    from accelerate.utils import gather_object

    from hf_simo.merging import merge, search
    from hf_simo.realign import compute_feature_cache
    from hf_simo.training import make_accelerator

    accelerator = make_accelerator(folder, report_to=None)
    base = str(Path(tasks[0].split("=", 1)[1]).parent / "base")  # make_sources' layout
    _, size = build(encoder)
    everything = batches(size, samples, 8)
    per = len(everything) // accelerator.num_processes  # whole batches per process: the same batches as one process
    share = everything[accelerator.process_index * per : (accelerator.process_index + 1) * per]
    accelerator.wait_for_everyone()
    start, cpu = time.perf_counter(), cpu_seconds()
    result = search(tasks, share, base, alphas=ALPHAS, accelerator=accelerator)
    search_seconds, search_cpu = time.perf_counter() - start, cpu_seconds() - cpu
    model = merge(tasks, base, alpha=result.best.alpha)
    accelerator.wait_for_everyone()
    start, cpu = time.perf_counter(), cpu_seconds()
    cache = compute_feature_cache(
        model, share, data_fingerprint=f"bench-{samples}", cache_dir=Path(folder) / "cache", accelerator=accelerator
    )
    cache_seconds, cache_cpu = time.perf_counter() - start, cpu_seconds() - cpu
    rows = gather_object([[search_seconds, search_cpu, cache_seconds, cache_cpu]])
    if not accelerator.is_main_process:
        return None
    return {
        "processes": accelerator.num_processes,
        "search_wall": max(r[0] for r in rows),
        "search_cpu": [r[1] for r in rows],
        "cache_wall": max(r[2] for r in rows),
        "cache_cpu": [r[3] for r in rows],
        "best_alpha": result.best.alpha,
        "scores": [c.score for c in result.candidates],
        "cache_rows": len(cache),
        "cache_sum": float(sum(f.double().sum() for f in cache.features.values())),
    }


def run_child(args: list[str], env: dict, processes: int = 1) -> dict:
    if processes == 1:
        command = [sys.executable, __file__, *args]
    else:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        command = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            str(processes),
        ]
        command += ["--main_process_port", str(port), __file__, *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="small", choices=sorted(ENCODERS))
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--parts", nargs="+", default=["size", "shards"], choices=["size", "shards"])
    parser.add_argument("--_cache", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--_shard", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    if args._cache:
        where, dtype, folder = args._cache
        print(json.dumps(cache_child(args.encoder, args.samples, where, dtype, folder)))
        return
    if args._shard:
        folder, tasks = args._shard
        row = shard_child(args.encoder, args.samples, folder, json.loads(tasks))
        if row is not None:
            print(json.dumps(row))
        return

    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "ACCELERATE_USE_CPU": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"), env.get("PYTHONPATH", "")])
    common = ["--encoder", args.encoder, "--samples", str(args.samples)]
    cpu = platform.processor() or platform.machine()
    print(f"Machine: {cpu}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, 1 thread per process; ")
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; load average {os.getloadavg()}; ")
    print(f"encoder {args.encoder} ({ENCODERS[args.encoder]['size']} px), {args.samples} images.\n")

    if "size" in args.parts:
        from hf_simo.realign.feature_cache import feature_cache_bytes

        print("| cache | dtype | file (MB) | formula (MB) | build (s) | peak RSS built (MiB) | after an epoch (MiB) |")
        print("|---|---|--:|--:|--:|--:|--:|")
        rows = []
        for where, dtype in (("memory", "float32"), ("disk", "float32"), ("disk", "bfloat16")):
            with tempfile.TemporaryDirectory() as folder:
                row = run_child([*common, "--_cache", where, dtype, folder], env)
            formula = feature_cache_bytes(
                args.samples, tuple(row["grid"]), row["hidden"], row["layers"], dtype, row["label_bytes_per_sample"]
            )
            file_mb = f"{row['file_bytes'] / 1e6:.1f}" if row["file_bytes"] else "–"
            print(
                f"| {where} | {dtype} | {file_mb} | {formula / 1e6:.1f} | {row['seconds']:.1f} | "
                f"{row['rss_built_mib']:.0f} | {row['rss_after_epoch_mib']:.0f} |"
            )
            rows.append((dtype, row))
        dtype, row = rows[-1]
        grid, hidden, layers = tuple(row["grid"]), row["hidden"], row["layers"]
        print(f"\n{layers} cached layers, grid {grid}, hidden {hidden}; features per image: "
              f"{feature_cache_bytes(1, grid, hidden, layers, 'float32') / 1e6:.2f} MB (float32); labels per image "
              f"{row['label_bytes_per_sample'] / 1e6:.2f} MB.")  # fmt: skip
        for n in (4000,):
            print(
                f"At {n} images: features {feature_cache_bytes(n, grid, hidden, layers, 'float32') / 1e9:.2f} GB "
                f"(float32), {feature_cache_bytes(n, grid, hidden, layers, 'bfloat16') / 1e9:.2f} GB (bfloat16), "
                f"labels {n * row['label_bytes_per_sample'] / 1e9:.2f} GB."
            )
        print()

    if "shards" in args.parts:
        with tempfile.TemporaryDirectory() as folder:
            tasks = make_sources(args.encoder, Path(folder) / "sources")
            results = {}
            for processes in (1, 2):
                results[processes] = run_child(
                    [*common, "--_shard", str(Path(folder) / f"run-{processes}"), json.dumps(tasks)], env, processes
                )
        one, two = results[1], results[2]
        print(f"α search ({len(ALPHAS)} α + 3 baselines) and feature cache, 1 vs 2 processes (gloo):\n")
        print(
            "| processes | search wall (s) | search CPU per process (s) | cache wall (s) | cache CPU per process (s) |"
        )
        print("|--:|--:|--:|--:|--:|")
        for processes, row in results.items():
            search_cpu = " / ".join(f"{c:.1f}" for c in row["search_cpu"])
            cache_cpu = " / ".join(f"{c:.1f}" for c in row["cache_cpu"])
            print(f"| {processes} | {row['search_wall']:.1f} | {search_cpu} | {row['cache_wall']:.1f} | {cache_cpu} |")
        same = one["best_alpha"] == two["best_alpha"] and one["cache_rows"] == two["cache_rows"]
        difference = max(abs(a - b) for a, b in zip(one["scores"], two["scores"]))
        print(
            f"\nspeed-up (wall): search {one['search_wall'] / two['search_wall']:.2f}×, cache "
            f"{one['cache_wall'] / two['cache_wall']:.2f}×; CPU per process: search "
            f"{one['search_cpu'][0] / max(two['search_cpu']):.2f}×, cache "
            f"{one['cache_cpu'][0] / max(two['cache_cpu']):.2f}×; same α and cache rows: {same} (α "
            f"{one['best_alpha']}, feature sums {one['cache_sum']:.6g} / {two['cache_sum']:.6g}; largest score "
            f"difference {difference:.2g})"
        )


if __name__ == "__main__":
    main()
