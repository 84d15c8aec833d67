"""`hf-simo demo`: the whole SIMO pipeline on the embedded benchmark, from nothing, ending with the paper's table.

1. the embedded NYUv2-like benchmark (generated, cached under `$HF_HOME/hf_simo`);
2. θ_0: the small DINOv2 shipped with hf_simo (pre-trained with masked image modelling on the benchmark's larger
   pre-training set; `--pretrain_encoder` pre-trains a quick one on the task images instead, as before);
3. one single-task checkpoint per task (two-stage fine-tuning) and the joint multi-task (MTL) baseline, with the
   size of every task vector (‖τ_t‖/‖θ_0‖) and the cosines between them;
4. Task Arithmetic and TIES merges, α tuned on the validation split;
5. head and representation re-alignment of each merge on the validation split;
6. every model evaluated on the test split: the paper-style table with Table 4's cost columns;
7. task relationships (θ_0 + λ·τ_t sweeps, T×T matrix, report), Task Arithmetic on every k-task combination
   (Figure 1), learned per-layer coefficients (Figure 2) and a qualitative grid (Figure 4), as PNG and SVG;
8. model cards for every saved model.

Every stage is cached in the output folder (training runs resume or are skipped when their arguments match; merged
and re-aligned models are reused when their settings match), so a second run only redoes what changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_folder, atomic_write_json, atomic_write_text
from ..utils.logging import get_logger
from .arguments import DemoArguments, forwarded


logger = get_logger(__name__)


def _key(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _atomic_json(path: Path, data: Any) -> None:
    atomic_write_json(path, data, indent=2, default=str)


def run_demo(args: DemoArguments) -> dict[str, Any]:
    """Run (or resume) the demo; returns the results, the tables and the files written (it prints nothing: the
    stages are logged, and ``hf-simo demo`` prints the returned tables, `summary_text`)."""
    from ..analysis import describe_relationships, relationship_inputs, relationship_matrix, sweep_task_vectors
    from ..analysis.coefficients import encoder_state, learn_layer_coefficients
    from ..analysis.combinations import merge_combinations
    from ..analysis.plots import (
        plot_combinations,
        plot_layer_coefficients,
        plot_relationship_matrix,
        plot_relationships,
    )
    from ..analysis.qualitative import build_qualitative_grid, collect_predictions, plot_qualitative
    from ..cards import write_model_card
    from ..data import DataArguments, load_data
    from ..evaluation import evaluate, primary_values, simo_batches
    from ..merging import search_and_merge
    from ..metrics import render_table
    from ..modeling_simo import SimoModel
    from ..realign import RealignmentSettings, realign
    from ..training import (
        FinetuneArguments,
        MTLArguments,
        RunArguments,
        configure_threads,
        dataset_task_specs,
        read_summary,
        run_finetune,
        run_mtl,
    )

    started = time.perf_counter()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    configure_threads(args.num_threads)
    data = DataArguments(**forwarded(args, "DataArguments"))
    # num_threads (forwarded): else every training stage would reset torch to all cores
    run = RunArguments(report_to="jsonl", **forwarded(args, "RunArguments"))
    timings: dict[str, float] = {}

    def timed(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 1)

    # 1-3: data, encoder, single-task and MTL training (each cached by the training recipes)
    t0 = time.perf_counter()
    tasks = list(dataset_task_specs(data))
    sources: dict[str, str] = {}
    for task in tasks:
        logger.info(f"single-task fine-tuning: {task}")
        task_run = dataclasses.replace(run, output_dir=str(out / f"finetune-{task}"))
        finetune = FinetuneArguments(task=task, **forwarded(args, "FinetuneArguments"))
        sources[task] = str(run_finetune(finetune, data, task_run))
    timed("single-task fine-tuning (incl. data and encoder)", t0)
    t0 = time.perf_counter()
    logger.info("multi-task baseline (MTL)")
    mtl = MTLArguments(**forwarded(args, "MTLArguments"))
    mtl_dir = run_mtl(mtl, data, dataclasses.replace(run, output_dir=str(out / "mtl")))
    timed("MTL training", t0)

    datasets = load_data(data, test_samples=args.test_samples)
    validation = simo_batches(datasets["validation"], tasks, 64)
    test = simo_batches(datasets["test"], tasks, 64)

    # 4-6: evaluation, merging, re-alignment
    t0 = time.perf_counter()
    results: dict[str, dict[str, dict[str, float]]] = {}
    costs: dict[str, dict[str, Any]] = {}
    singles = {t: SimoModel.from_pretrained(sources[t]).eval() for t in tasks}
    results["Single-task"] = {t: evaluate(singles[t], test, [t])[t] for t in tasks}
    summaries = {t: read_summary(out / f"finetune-{t}") or {} for t in tasks}
    costs["Single-task"] = {
        "steps": sum(sum((s.get("stage_steps") or {}).values()) for s in summaries.values()),
        "trained params": _params(sum(p.numel() for m in singles.values() for p in m.parameters())),
        "samples": f"{args.train_samples} (train)",
    }
    val_baselines = {t: primary_values(singles[t], evaluate(singles[t], validation, [t]))[t] for t in tasks}
    mtl = SimoModel.from_pretrained(mtl_dir).eval()
    results["MTL"] = evaluate(mtl, test)
    mtl_summary = read_summary(out / "mtl") or {}
    costs["MTL"] = {
        "steps": sum((mtl_summary.get("stage_steps") or {}).values()),
        "trained params": _params(sum(p.numel() for p in mtl.parameters())),
        "samples": f"{args.train_samples} (train)",
    }
    vectors = _task_vectors(singles, mtl)
    atomic_write_text(out / "task_vectors.md", vectors.to_markdown())
    del mtl
    timed("evaluation of the baselines", t0)

    saved_models: dict[str, Path] = {}
    merged_models: dict[str, SimoModel] = {}
    for method in args.merge_methods:
        label = {"task_arithmetic": "TA", "ties": "TIES"}.get(method, method)
        options = {"density": args.ties_density} if method == "ties" else {}
        t0 = time.perf_counter()
        settings_key = _key([sources, method, options, args.alpha_grid, args.validation_samples])
        model_dir = out / "models" / label.lower()
        cached = _cached(model_dir, settings_key)
        if cached is not None:
            merged = SimoModel.from_pretrained(model_dir / "model").eval()
            alpha = cached["alpha"]
        else:
            logger.info(f"merging with {method} (α tuned on validation)")
            outcome = search_and_merge(
                sources,
                method=method,
                options=options,
                alphas=args.alpha_grid,
                validation=validation,
                baselines=val_baselines,
                # The demo fine-tuned these encoders from its own base, so the provenance check can only misfire
                # (long fine-tuning of the small encoder moves it past the threshold); it still warns.
                max_relative_distance=None,
            )
            merged, alpha = outcome.model.eval(), outcome.alpha
            (model_dir).mkdir(parents=True, exist_ok=True)
            if outcome.search_table:
                atomic_write_text(model_dir / "alpha_search.md", outcome.search_table)
        if cached is None:
            results[label] = evaluate(merged, test)
            _save_stage(model_dir, merged, settings_key, {"alpha": alpha, "results": results[label]}, args.dataset)
        else:
            results[label] = cached["results"]
        costs[label] = {"steps": 0, "trained params": 0, "samples": f"{args.validation_samples} (val, α search)"}
        saved_models[label] = model_dir / "model"
        merged_models[label] = merged
        timed(f"{label} merge", t0)

        for mode in ("head", "representation"):
            row = f"{label} + {mode[:4] if mode == 'head' else 'repr.'} re-align"
            t0 = time.perf_counter()
            settings = RealignmentSettings(mode=mode, **forwarded(args, "RealignmentSettings"))
            realign_key = _key([settings_key, dataclasses.asdict(settings)])
            realign_dir = out / "models" / f"{label.lower()}-{mode}"
            cached = _cached(realign_dir, realign_key)
            if cached is None:
                logger.info(f"{mode} re-alignment of the {label} merge")
                model, record, peft_model = realign(
                    SimoModel.from_pretrained(model_dir / "model"),
                    datasets["validation"],
                    settings,
                    output_dir=realign_dir / f"run-{realign_key}",  # checkpoints of these settings only
                )
                model.config.realignment = {**record.to_dict(), "dataset": args.dataset, "split": "validation"}
                results[row] = evaluate(model.eval(), test)
                cost = {
                    "steps": record.steps,
                    "trained params": _params(record.trainable_parameters),
                    "samples": f"{record.samples} (val)",
                }
                _save_stage(realign_dir, model, realign_key, {"results": results[row], "cost": cost}, args.dataset)
                if peft_model is not None:
                    with atomic_folder(realign_dir / "adapter", overwrite=True) as adapter:
                        peft_model.save_pretrained(adapter)
                for run_dir in realign_dir.glob("run*"):  # this run's checkpoints, and other settings' stale ones
                    shutil.rmtree(run_dir, ignore_errors=True)
            else:
                results[row], cost = cached["results"], cached["cost"]
            costs[row] = cost
            saved_models[row] = realign_dir / "model"
            timed(row, t0)

    specs = _specs(singles)
    metric_names = {t: specs[t].metric for t in tasks}
    rows = {name: primary_values(specs, values) for name, values in results.items()}
    table = render_table(
        rows,
        baseline="Single-task",
        metric_names=metric_names,
        extra_columns=costs,
        title=f"Embedded {args.dataset} benchmark, test split ({args.test_samples} images)",
    )
    atomic_write_text(out / "results.md", table)
    _atomic_json(
        out / "results.json",
        {"results": results, "costs": costs, "task_vectors": vectors.to_dict(), "timings": timings},
    )
    for name, folder in saved_models.items():
        if name in results:
            write_model_card(
                folder,
                eval_results=results[name],
                results_table=rows,
                results_baseline="Single-task",
                dataset_name=f"hf_simo embedded {args.dataset}",
                dataset_split="test",
            )

    # 7: analysis
    t0 = time.perf_counter()
    figures = out / "figures"
    logger.info("task relationships (θ_0 + λ·τ_t sweeps)")
    inputs = relationship_inputs(sources, validation, max_relative_distance=None)
    relations = sweep_task_vectors(
        inputs.model, inputs.base_state, inputs.task_vectors, args.relationship_lambdas, validation, inputs.baselines
    )
    relations.save(out / "relationships.json")
    files = plot_relationships(relations, figures / "relationships")
    matrix = relationship_matrix(relations, 1.0)
    files += plot_relationship_matrix(matrix, figures / "relationship_matrix")
    report = describe_relationships(relations, 1.0)
    atomic_write_text(out / "relationships.md", report + "\n\n" + matrix.to_markdown() + "\n")
    timed("task relationships", t0)

    t0 = time.perf_counter()
    logger.info("Task Arithmetic on every task combination (Figure 1)")
    combinations = merge_combinations(
        inputs.model,
        inputs.base_state,
        inputs.task_vectors,
        args.alpha_grid,
        validation,
        inputs.baselines,
        test,
        rows["Single-task"],
    )
    combinations.save(out / "combinations.json")
    combinations_table = combinations.to_markdown()
    atomic_write_text(out / "combinations.md", combinations_table + "\n")
    files += plot_combinations(
        combinations,
        figures / "combinations",
        title=f"Task Arithmetic on every k-task combination\nembedded {args.dataset}, test split",
    )
    timed("task combinations (Figure 1)", t0)

    t0 = time.perf_counter()
    logger.info("per-layer merging coefficients (Figure 2)")
    finetuned = {t: encoder_state(singles[t]) for t in tasks}
    learned = learn_layer_coefficients(
        inputs.model, inputs.base_state, finetuned, validation, steps=args.coefficient_steps
    )
    _atomic_json(
        out / "layer_coefficients.json", {"coefficients": learned.coefficients, "groups": learned.group_names}
    )
    files += plot_layer_coefficients(learned.blocks(), figures / "layer_coefficients")
    timed("per-layer coefficients", t0)

    t0 = time.perf_counter()
    n = args.qualitative_samples
    sample = test[0]
    shown = {"MTL": mtl_dir}
    for label in merged_models:
        shown[label] = saved_models[label]
        shown[f"{label} + repr. re-align"] = saved_models[f"{label} + repr. re-align"]
    with torch.no_grad():
        predictions = {"Single-task": {t: singles[t](sample["pixel_values"][:n]).predictions[t] for t in tasks}}
        loaded = {name: SimoModel.from_pretrained(path) for name, path in shown.items()}
        predictions.update(collect_predictions(loaded, sample["pixel_values"][:n]))
    grid = build_qualitative_grid(
        sample["pixel_values"][:n],
        {t: v[:n] for t, v in sample["labels"].items()},
        predictions,
        specs,
    )
    files += plot_qualitative(grid, figures / "qualitative")
    timed("qualitative grid", t0)

    timings["total"] = round(time.perf_counter() - started, 1)
    _atomic_json(
        out / "results.json",
        {"results": results, "costs": costs, "task_vectors": vectors.to_dict(), "timings": timings},
    )
    written = [out / "results.md", out / "results.json", out / "task_vectors.md", out / "relationships.md"]
    written += [out / "relationships.json", out / "combinations.md", out / "combinations.json"]
    written += [out / "layer_coefficients.json", *files]
    written += [p / "README.md" for p in saved_models.values()]
    return {
        "results": results,
        "table": table,
        "task_vectors_table": vectors.to_markdown(),
        "relationships_report": report,
        "combinations_table": combinations_table,
        "costs": costs,
        "task_vectors": vectors.to_dict(),
        "timings": timings,
        "files": written,
    }


def summary_text(result: dict[str, Any]) -> str:
    """What ``hf-simo demo`` prints at the end: the table, the task vectors, the relationships and the files."""
    lines = [
        result["table"],
        "Task vectors τ = θ − θ0 of the fine-tuned encoders (the paper's regime: small ‖τ‖/‖θ0‖):\n",
        result["task_vectors_table"],
        result["relationships_report"],
        "Task Arithmetic on every k-task combination (Figure 1; normalized performance on the test split, α chosen "
        "on validation):\n",
        result["combinations_table"],
        "",
        f"Finished in {result['timings']['total'] / 60:.1f} min. Files written:",
        *(f"  {path}" for path in result["files"]),
    ]
    return "\n".join(lines)


def _task_vectors(singles: dict, mtl):
    """‖τ‖/‖θ0‖, cos(θ, θ0) and pairwise cosines of the single-task and MTL encoders' task vectors."""
    from ..analysis.task_vectors import task_vector_report
    from ..hub import resolve_repo
    from ..modeling_simo import load_dinov2_encoder

    config = next(iter(singles.values())).config
    resolved = resolve_repo(config.base_model_name_or_path, config.base_model_revision)
    base = load_dinov2_encoder(resolved.path).state_dict()
    states = {task: model.dinov2.state_dict() for task, model in singles.items()}
    states["MTL"] = mtl.dinov2.state_dict()
    return task_vector_report(base, states)


def _specs(singles) -> dict:
    return {t: m.config.get_task(t) for t, m in singles.items()}


def _params(count: int) -> str:
    return f"{count / 1e6:.2f}M" if count >= 1e5 else f"{count / 1e3:.1f}k"


def _cached(folder: Path, key: str) -> dict | None:
    """The stage record of `folder` if it was produced with the same settings and its model is complete."""
    record = folder / "stage.json"
    if not record.is_file() or not (folder / "model" / "config.json").is_file():
        return None
    data = json.loads(record.read_text())
    return data if data.get("key") == key else None


def _save_stage(folder: Path, model, key: str, record: dict, dataset: str) -> None:
    """Save `model` to `folder/model` atomically, then the record that makes it reusable."""
    with atomic_folder(folder / "model", overwrite=True) as tmp:  # the previous model stays until this one is complete
        model.save_pretrained(tmp, model_card=False)
    _atomic_json(folder / "stage.json", {"key": key, **record})


__all__ = ["run_demo", "summary_text"]
