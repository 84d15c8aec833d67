"""The re-alignment result on the embedded benchmarks (issues 5 and 14), over independent seeds.

    python benchmarks/realign_results.py                         # NYUv2-like, seeds 0 1 2, ~15 minutes each
    python benchmarks/realign_results.py --dataset taskonomy     # the 5-task Taskonomy-like (Table 3, Figure 1)
    python benchmarks/realign_results.py --converged --seeds 0   # trained to a plateau, as the paper (slower)
    python benchmarks/realign_results.py --seeds 0 --output-root runs

Each seed is one full `hf-simo demo` from nothing: its own benchmark data (the generator's seed), θ_0 the encoder
shipped with hf_simo (the same for every seed), single-task and MTL training, TA and TIES merges (α tuned on
validation), head and representation re-alignment of each, evaluated on the test split. Prints, per method, the
absolute metrics and normalized performance averaged over seeds, Δ (normalized performance − 100%) as mean ±
standard deviation, and Table 4's cost columns of the first seed; ‖τ_t‖/‖θ_0‖ of every fine-tuned encoder (mean
over seeds); Figure 1's mean normalized performance of the k-task Task Arithmetic combinations (mean ± std over
seeds); then each seed's own table and its wall time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--dataset", default="nyuv2", choices=["nyuv2", "taskonomy"], help="embedded preset")
    parser.add_argument("--num-threads", type=int, default=None, help="torch threads of each run (default: all)")
    parser.add_argument("--output-root", default="realign_results", help="one demo folder per seed goes here")
    parser.add_argument(
        "--converged",
        action="store_true",
        help="the paper's protocol: train single-task and MTL models until the validation loss plateaus "
        "(stage 1 up to 5 epochs, stage 2 up to 20 single-task / 40 MTL epochs, patience 3) instead of the demo's "
        "short budget",
    )
    parser.add_argument(
        "--summarize",
        action="store_true",
        help="only read the finished seeds' folders under --output-root (results.json) and print the tables, e.g. "
        "after running the seeds as separate processes side by side",
    )
    args = parser.parse_args()

    import torch

    from hf_simo.demo import DemoArguments, run_demo
    from hf_simo.metrics import METRIC_LABELS, format_metric, task_normalized_performance
    from hf_simo.utils.logging import disable_progress_bars

    disable_progress_bars()  # the one switch (``hf-simo demo --disable_tqdm``); the runs' logs stay

    runs, walls = {}, {}
    for seed in args.seeds:
        if args.summarize:
            folder = Path(args.output_root) / f"seed{seed}"
            runs[seed] = {
                **json.loads((folder / "results.json").read_text()),
                "table": (folder / "results.md").read_text(),
            }
            walls[seed] = runs[seed]["timings"]["total"]
            continue
        start = time.perf_counter()
        budget = {"stage1_epochs": 5, "finetune_epochs": 20, "mtl_epochs": 40} if args.converged else {}
        runs[seed] = run_demo(
            DemoArguments(
                output_dir=str(Path(args.output_root) / f"seed{seed}"),
                dataset=args.dataset,
                seed=seed,
                num_threads=args.num_threads,
                **budget,
            )
        )
        walls[seed] = time.perf_counter() - start

    first = runs[args.seeds[0]]
    rows = list(first["results"])
    tasks = list(first["results"]["Single-task"])
    metric_of = {"segmentation": "miou", "depth": "abs_err", "normals": "mean_angle"}
    metric_names = {t: metric_of.get(t, "abs_err") for t in tasks}

    def value(run, row, task):
        return run["results"][row][task][metric_names[task]]

    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, "
        + (f"summarized from {args.output_root}; " if args.summarize else f"{torch.get_num_threads()} threads; ")
        + f"{datetime.date.today().isoformat()}; load average "
        f"{os.getloadavg()[0]:.1f}; dataset {args.dataset}; seeds {args.seeds}.\n"
    )
    header = " | ".join(f"{t} [{METRIC_LABELS[metric_names[t]]}]" for t in tasks)
    print(f"| Method | {header} | Δ mean ± std | steps | trained params | samples |")
    print("|---|" + ":-:|" * (len(tasks) + 4))
    for row in rows:
        cells, deltas = [], []
        for run in runs.values():
            baseline = {t: value(run, "Single-task", t) for t in tasks}
            values = {t: value(run, row, t) for t in tasks}
            per_task = task_normalized_performance(values, baseline, metric_names)
            deltas.append(100 * (sum(per_task.values()) / len(per_task) - 1))
        for t in tasks:
            mean_value = statistics.mean(value(run, row, t) for run in runs.values())
            cell = format_metric(metric_names[t], mean_value)
            if row != "Single-task":
                normalized = statistics.mean(
                    task_normalized_performance(
                        {t: value(run, row, t)}, {t: value(run, "Single-task", t)}, metric_names
                    )[t]
                    for run in runs.values()
                )
                cell += f" ({100 * normalized:.1f}%)"
            cells.append(cell)
        spread = statistics.stdev(deltas) if len(deltas) > 1 else 0.0
        delta = "-" if row == "Single-task" else f"{statistics.mean(deltas):+.1f}% ± {spread:.1f}"
        cost = first["costs"].get(row, {})
        extra = " | ".join(str(cost.get(k, "")) for k in ("steps", "trained params", "samples"))
        print(f"| {row} | {' | '.join(cells)} | {delta} | {extra} |")
    ratios = {
        name: statistics.mean(r["task_vectors"]["tau_ratio"][name] for r in runs.values())
        for name in first["task_vectors"]["tau_ratio"]
    }
    print("\n‖τ_t‖/‖θ_0‖ (mean over seeds): " + ", ".join(f"{name} {value:.3f}" for name, value in ratios.items()))
    by_k: dict[int, list[float]] = {}
    for seed in args.seeds:
        combinations = json.loads((Path(args.output_root) / f"seed{seed}" / "combinations.json").read_text())
        per_k: dict[int, list[float]] = {}
        for entry in combinations["combinations"]:
            per_k.setdefault(len(entry["tasks"]), []).append(entry["normalized"])
        for k, values in per_k.items():
            by_k.setdefault(k, []).append(statistics.mean(values))
    print("\nFigure 1 (Task Arithmetic on every k-task combination, test split; mean over the combinations, then")
    print("mean ± std over seeds):\n")
    print("| k | normalized performance |\n|--:|--:|")
    for k, values in sorted(by_k.items()):
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"| {k} | {100 * statistics.mean(values):.1f}% ± {100 * spread:.1f} |")
    for seed, run in runs.items():
        print(f"\nSeed {seed} ({walls[seed] / 60:.1f} min from nothing):\n")
        print(run["table"])
    summary = {str(seed): {"results": run["results"], "wall_seconds": walls[seed]} for seed, run in runs.items()}
    Path(args.output_root).mkdir(parents=True, exist_ok=True)
    (Path(args.output_root) / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
