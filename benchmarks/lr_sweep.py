"""Choose the fine-tuning defaults on validation data (issue 14, item 2): the stage-2 encoder learning rate and the
layer-wise learning-rate decay of single-task fine-tuning, on the embedded benchmark, from the shipped encoder.

    python benchmarks/lr_sweep.py                                    # the demo's budget, every task, the grid below
    python benchmarks/lr_sweep.py --encoder-lr-ratios 1 0.1 --layer-decays 1 0.75 --seeds 0 1

Every (encoder-lr ratio, layer decay) of the grid fine-tunes every task of the preset with the demo's settings
(two stages; the heads' stage-2 rate stays the recipe's default, the encoder gets ratio × that rate), then scores the
final model on the validation split (the test split is never read). The setting with the highest mean normalized
performance against the grid's first setting (eq. 1 over tasks, then mean over seeds) is the one to make the
default. Also printed: ‖τ_t‖/‖θ_0‖ of each run (how far the setting moves the encoder). Runs are cached under
`--output-root` (a second call only trains what is missing).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="nyuv2", choices=["nyuv2", "taskonomy"])
    parser.add_argument("--encoder-lr-ratios", type=float, nargs="+", default=[1.0, 0.3, 0.1])
    parser.add_argument("--layer-decays", type=float, nargs="+", default=[1.0, 0.75])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--finetune-epochs", type=int, default=3, help="stage-2 epochs (the demo's default)")
    parser.add_argument("--train-samples", type=int, default=2000)
    parser.add_argument("--validation-samples", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-threads", type=int, default=None)
    parser.add_argument("--output-root", default="lr_sweep")
    args = parser.parse_args()

    import torch

    from hf_simo.data import DataArguments, load_data
    from hf_simo.evaluation import evaluate, primary_values, simo_batches
    from hf_simo.metrics import task_normalized_performance
    from hf_simo.modeling_simo import SimoModel
    from hf_simo.training import (
        FinetuneArguments,
        RunArguments,
        configure_threads,
        dataset_task_specs,
        read_summary,
        run_finetune,
    )
    from hf_simo.utils.logging import disable_progress_bars

    disable_progress_bars()
    configure_threads(args.num_threads)
    grid = list(itertools.product(args.encoder_lr_ratios, args.layer_decays))
    base_lr = FinetuneArguments().stage2_learning_rate
    scores: dict[tuple[float, float], list[dict[str, float]]] = {setting: [] for setting in grid}
    drifts: dict[tuple[float, float], dict[str, list[float]]] = {setting: {} for setting in grid}
    metric_names: dict[str, str] = {}
    started = time.perf_counter()
    for seed in args.seeds:
        data = DataArguments(
            dataset=args.dataset,
            image_size=args.image_size,
            train_samples=args.train_samples,
            validation_samples=args.validation_samples,
            data_seed=seed,
        )
        tasks = list(dataset_task_specs(data))
        validation = simo_batches(load_data(data, train=False)["validation"], tasks, 64)
        for ratio, decay in grid:
            values = {}
            for task in tasks:
                folder = Path(args.output_root) / f"seed{seed}" / f"lr{ratio:g}-decay{decay:g}" / task
                finetune = FinetuneArguments(
                    task=task,
                    stage2_epochs=args.finetune_epochs,
                    stage2_encoder_learning_rate=ratio * base_lr,
                    layer_decay=decay,
                )
                run = RunArguments(output_dir=str(folder), seed=seed, num_threads=args.num_threads, report_to="jsonl")
                model_dir = run_finetune(finetune, data, run)
                model = SimoModel.from_pretrained(model_dir).eval()
                values[task] = primary_values(model, evaluate(model, validation, [task]))[task]
                metric_names[task] = model.config.tasks[task]["metric"]
                drift = (read_summary(folder) or {}).get("encoder_drift", {}).get("tau_ratio")
                drifts[(ratio, decay)].setdefault(task, []).append(float("nan") if drift is None else drift)
            scores[(ratio, decay)].append(values)

    reference = grid[0]
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {datetime.date.today().isoformat()}; load average "
        f"{os.getloadavg()[0]:.1f}; dataset {args.dataset}; seeds {args.seeds}; {args.finetune_epochs} stage-2 "
        f"epochs; heads' stage-2 lr {base_lr:g}; {(time.perf_counter() - started) / 60:.1f} min.\n"
    )
    tasks = list(scores[reference][0])
    print(
        "| encoder lr (× heads') | layer decay | "
        + " | ".join(f"{t} (val)" for t in tasks)
        + " | normalized vs first row (val) | ‖τ‖/‖θ0‖ (mean over tasks) |"
    )
    print("|--:|--:|" + "--:|" * (len(tasks) + 2))
    best, best_score = None, -float("inf")
    for setting in grid:
        normalized = []
        for values, ref in zip(scores[setting], scores[reference]):
            per_task = task_normalized_performance(values, ref, metric_names)
            normalized.append(sum(per_task.values()) / len(per_task))
        score = statistics.mean(normalized)
        if score > best_score:
            best, best_score = setting, score
        means = {t: statistics.mean(v[t] for v in scores[setting]) for t in tasks}
        drift = statistics.mean(d for values in drifts[setting].values() for d in values)
        print(
            f"| {setting[0]:g} | {setting[1]:g} | "
            + " | ".join(f"{means[t]:.4g}" for t in tasks)
            + f" | {100 * score:.1f}% | {drift:.3f} |"
        )
    print(f"\nBest on validation: encoder lr {best[0]:g} × heads', layer decay {best[1]:g} ({100 * best_score:.1f}%).")
    summary = {
        "grid": [list(s) for s in grid],
        "scores": {f"{r:g},{d:g}": v for (r, d), v in scores.items()},
        "drifts": {f"{r:g},{d:g}": v for (r, d), v in drifts.items()},
        "best": list(best),
        "args": vars(args),
    }
    Path(args.output_root).mkdir(parents=True, exist_ok=True)
    (Path(args.output_root) / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
