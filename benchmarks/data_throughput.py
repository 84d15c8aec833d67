"""Benchmark: throughput of the embedded benchmark's generator and of a DataLoader over the cached DatasetDict.

    python benchmarks/data_throughput.py                 # 1024 samples per generator row, 2048-sample DataLoader epochs
    python benchmarks/data_throughput.py --samples 512 --loader-samples 1024

Rows:
- generator: `generate_batches` (scene sampling + vectorised ray casting + edges/keypoints, batches of 32) on one
  thread (`torch.set_num_threads(1)`, `OMP_NUM_THREADS=1`), at 64 and 96 pixels, for both presets. CPU time of this
  process is reported next to wall time because other processes may share the machine.
- build: `load_benchmark(..., use_cache=False)` (generator + Arrow table) for the train split.
- DataLoader: one epoch over the cached (`save_to_disk`, memory-mapped) train split formatted with
  `with_format("torch")`, batch 32, num_workers 0 and 2; and, for reference, reading contiguous 32-sample slices
  (one Arrow -> torch conversion per batch instead of per sample).
Prints a Markdown table with the machine, versions, thread count and date.
"""

from __future__ import annotations

import os


os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _time(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1024, help="samples per generator row")
    parser.add_argument("--loader-samples", type=int, default=2048, help="train split size for the DataLoader rows")
    parser.add_argument("--cache-dir", default=None, help="benchmark cache (default: a temporary folder)")
    args = parser.parse_args()

    import datasets
    import numpy
    import torch

    from hf_simo.data import generate_batches, load_benchmark

    torch.set_num_threads(1)
    datasets.disable_progress_bars()
    rows: list[tuple[str, str, float, float | None]] = []  # (what, setting, wall s/sample, cpu s/sample)

    for size in (64, 96):
        for preset in ("nyuv2", "taskonomy"):
            next(generate_batches(preset, "train", 32, size))  # warm-up
            wall, cpu = _time(lambda p=preset, s=size: [None for _ in generate_batches(p, "train", args.samples, s)])
            rows.append((f"generator ({preset})", f"{size} px, 1 thread", wall / args.samples, cpu / args.samples))

    n_build = args.samples
    wall, cpu = _time(lambda: load_benchmark("nyuv2", sizes={"train": n_build}, use_cache=False))
    rows.append(("build DatasetDict in memory (nyuv2)", "64 px, 1 thread", wall / n_build, cpu / n_build))

    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache_dir or tmp
        n = args.loader_samples
        wall, cpu = _time(lambda: load_benchmark("nyuv2", sizes={"train": n}, cache_dir=cache))
        rows.append(("build + save_to_disk (nyuv2)", "64 px, 1 thread", wall / n, cpu / n))
        train = load_benchmark("nyuv2", sizes={"train": n}, cache_dir=cache)["train"]
        for workers in (0, 2):
            loader = torch.utils.data.DataLoader(train, batch_size=32, num_workers=workers)
            next(iter(loader))  # warm-up (worker start-up is not an epoch cost)
            wall = time.perf_counter()
            seen = sum(len(batch["image"]) for batch in loader)
            wall = time.perf_counter() - wall
            rows.append(
                ("DataLoader epoch, with_format('torch')", f"batch 32, num_workers={workers}", wall / seen, None)
            )
        # For reference: batched reads of contiguous slices, one Arrow -> torch conversion per batch.
        wall, cpu = _time(lambda: [train[i : i + 32] for i in range(0, n, 32)])
        rows.append(("contiguous slices `ds[i:i+32]`", "batch 32, main process", wall / n, cpu / n))

    print(f"## Data throughput ({datetime.date.today().isoformat()})\n")
    print(
        f"Machine: {_cpu_model()}, {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} thread), "
        f"numpy {numpy.__version__}, datasets {datasets.__version__}; OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}\n"
    )
    print("| What | Setting | samples/s (wall) | samples/s (process CPU) |")
    print("|---|---|---:|---:|")
    for what, setting, wall, cpu in rows:
        cpu_col = f"{1 / cpu:,.0f}" if cpu else "n/a (workers)" if "workers=2" in setting else "-"
        print(f"| {what} | {setting} | {1 / wall:,.0f} | {cpu_col} |")


if __name__ == "__main__":
    main()
