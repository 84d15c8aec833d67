"""The re-alignment job behind `recipes/realign.py` and `hf-simo realign`: merge single-task checkpoints, re-align
the merged model on the small multi-task validation split, evaluate on the test split, save (and push) the result.

With no arguments it runs on the embedded NYUv2-like benchmark: the single-task checkpoints of its three tasks are
trained with the fine-tuning recipe on first use (cached in `outputs/finetune-<dataset>-<task>`, the recipe's own
default folders, so `accelerate launch recipes/finetune.py --task depth` and this job share them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OptionError, RunConflictError, UnknownTaskError
from ..merging import DEFAULT_MAX_RELATIVE_DISTANCE
from ..metrics import render_table
from ..modeling_simo import SimoModel
from .arguments import RealignArguments, check_arguments


@dataclass
class RealignOutcome:
    """What the job produced (`interrupted`: stopped by --stop_after_steps, nothing saved but the checkpoint)."""

    model_dir: Path
    results: dict[str, dict[str, dict[str, float]]]
    table: str
    record: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    interrupted: bool = False


def ensure_single_task_checkpoints(tasks: list[str], data, run) -> dict[str, str]:
    """The embedded single-task checkpoints, trained with the fine-tuning recipe when missing (cached)."""
    from ..training.arguments import FinetuneArguments, RunArguments
    from ..training.finetune import dataset_tag, run_finetune

    sources = {}
    for task in tasks:
        task_run = RunArguments(
            output_dir=f"outputs/finetune-{dataset_tag(data)}-{task}",
            seed=run.seed,
            mixed_precision=run.mixed_precision,
            num_threads=run.num_threads,
            log_with=run.log_with,
            disable_progress_bar=run.disable_progress_bar,
        )
        sources[task] = str(run_finetune(FinetuneArguments(task=task), data, task_run))
    return sources


def run_realign(args: RealignArguments, data, run) -> RealignOutcome:
    """Merge → re-align on validation → evaluate on test → save; see the module docstring."""
    from ..atomic import atomic_folder, atomic_write_json, atomic_write_text
    from ..cards import write_model_card
    from ..data import load_data
    from ..evaluation import evaluate, evaluate_dataset, primary_values, simo_batches
    from ..image_processing_simo import make_image_processor
    from ..merging import parse_task_sources, search_and_merge
    from ..training.arguments import identity, json_mapping
    from ..training.finetune import dataset_tag, dataset_task_specs, image_size_of
    from ..training.run import (
        MODEL_DIR,
        check_output_dir,
        claim_output_dir,
        cleanup_checkpoints,
        push_from_main_process,
        save_atomically,
    )
    from ..training.utils import configure_threads, make_accelerator
    from .steps import RealignmentSettings, realign

    check_arguments(args)
    if run.stop_after_steps is not None and args.mode != "representation":
        raise OptionError(
            "--stop_after_steps applies to --mode representation (adapter training, checkpointed); head "
            "re-alignment trains on cached features and is not checkpointed"
        )
    configure_threads(run.num_threads)
    output_dir = Path(run.output_dir or f"outputs/realign-{dataset_tag(data)}-{args.merge_method}-{args.mode}")
    if (output_dir / MODEL_DIR).exists() and not run.overwrite_output_dir:
        raise RunConflictError(f"{output_dir}/model already exists; pass --overwrite_output_dir to replace it")
    accelerator = make_accelerator(output_dir, seed=run.seed, log_with="none", run_name="realign")
    # what the run computes: the same arguments resume an interrupted run's checkpoint, others are refused
    run_args = {"recipe": "realign", **identity(args, data, run)}
    status = check_output_dir(accelerator, output_dir, run_args, run.overwrite_output_dir)
    progress = not run.disable_progress_bar and accelerator.is_main_process

    specs = dataset_task_specs(data)
    if args.task_checkpoints:
        sources = parse_task_sources(args.task_checkpoints)
        unknown = [t for t in sources if t not in specs]
        if unknown:
            raise UnknownTaskError(
                f"checkpoint task(s) {unknown} are not in dataset {data.dataset!r}; it has tasks {list(specs)} "
                "(rename a checkpoint's task with NAME=SOURCE)"
            )
    else:
        with accelerator.main_process_first():
            sources = ensure_single_task_checkpoints(list(specs), data, run)
    tasks = list(sources)
    with accelerator.main_process_first():
        datasets = load_data(data, test_samples=data.test_samples)
    for split in ("validation", "test"):
        if split not in datasets:
            raise UnknownTaskError(f"re-alignment needs a {split!r} split; the dataset has {list(datasets)}")
        missing = [t for t in tasks if t not in datasets[split].column_names]
        if missing:
            raise UnknownTaskError(f"the {split} split has no labels for task(s) {missing}")
    realign_set = datasets["validation"]
    if args.realign_samples:
        realign_set = realign_set.select(range(min(args.realign_samples, len(realign_set))))
    test = datasets["test"]

    # single-task baselines on validation (for α) and on test (for the table)
    singles = {t: SimoModel.from_task_source(sources[t], t).eval() for t in tasks}  # imported sources too
    validation_batches = simo_batches(realign_set, tasks, args.eval_batch_size)
    val_baselines = {t: primary_values(singles[t], evaluate(singles[t], validation_batches, [t]))[t] for t in tasks}
    results: dict[str, dict[str, dict[str, float]]] = {"Single-task": {}}
    for t in tasks:
        results["Single-task"][t] = evaluate_dataset(
            singles[t], test, tasks=[t], batch_size=args.eval_batch_size, accelerator=accelerator
        )[t]
    del singles

    merged = search_and_merge(
        sources,
        base=args.base_model,
        method=args.merge_method,
        options=json_mapping(args.merge_options, "--merge_options"),
        alpha=args.alpha,
        alphas=args.alpha_grid,
        validation=validation_batches,
        baselines=val_baselines,
        max_relative_distance=None if args.allow_distant else DEFAULT_MAX_RELATIVE_DISTANCE,
        progress=progress,
    )
    if merged.search_table:
        accelerator.print(f"α search on the validation split:\n{merged.search_table}")
    model = merged.model
    hidden = model.config.backbone_config.hidden_size
    if args.mode == "representation" and args.rank > hidden:
        raise OptionError(f"--rank {args.rank} is larger than the encoder's hidden size {hidden}")
    # the inputs passed every check (the merge's included): claim the folder; a previous model stays in place until
    # the new one replaces it
    claim_output_dir(accelerator, output_dir, run_args, status, keep=(MODEL_DIR,))
    label = {"task_arithmetic": "TA", "ties": "TIES"}.get(args.merge_method, args.merge_method)
    results[label] = evaluate_dataset(model, test, batch_size=args.eval_batch_size, accelerator=accelerator)

    record: dict[str, Any] = {"merge_seconds": merged.seconds, "alpha": merged.alpha}
    peft_model = None
    if args.mode != "none":
        settings = RealignmentSettings(
            mode=args.mode,
            rank=args.rank,
            adapter=args.adapter,
            lora_target_modules=args.lora_target_modules,
            learning_rate=args.learning_rate,
            num_epochs=args.num_epochs,
            patience=args.patience,
            batch_size=run.per_device_train_batch_size,
            head_learning_rate=args.head_learning_rate,
            head_epochs=args.head_epochs,
            heldout_fraction=args.heldout_fraction,
            seed=run.seed,
            checkpointing_steps=run.checkpointing_steps,
            checkpoints_total_limit=run.checkpoints_total_limit,
            stop_after_steps=run.stop_after_steps,
        )
        model, realignment, peft_model = realign(
            model, realign_set, settings, output_dir=output_dir, accelerator=accelerator, progress=progress
        )
        if realignment.interrupted:
            accelerator.print(
                f"stopped after {realignment.steps} re-alignment steps (checkpoint in {output_dir}); run the same "
                "command to resume"
            )
            return RealignOutcome(
                model_dir=output_dir / MODEL_DIR,
                results=results,
                table="",
                record={**record, **realignment.to_dict()},
                interrupted=True,
            )
        record.update(realignment.to_dict())
        model.config.realignment = {
            **realignment.to_dict(),
            "dataset": dataset_tag(data),
            "split": "validation",
            "validation_samples": len(realign_set),
        }
        label = f"{label} + {args.mode} re-align"
        results[label] = evaluate_dataset(model, test, batch_size=args.eval_batch_size, accelerator=accelerator)

    metric_names = {t: model.config.tasks[t]["metric"] for t in tasks}
    rows = {name: primary_values(model, values) for name, values in results.items()}
    table = render_table(rows, baseline="Single-task", metric_names=metric_names, title=f"{dataset_tag(data)} (test)")
    final = output_dir / MODEL_DIR

    processor = make_image_processor(model.config, size=image_size_of(test))  # the data's size, as fine-tuning

    def write(folder: Path) -> None:
        model.save_pretrained(folder, model_card=False, image_processor=processor)
        write_model_card(
            folder,
            model.config,
            eval_results=results[label],
            results_table=rows,
            results_baseline="Single-task",
            dataset_name=dataset_tag(data),
            dataset_split="test",
        )

    # every file is written atomically; the model goes last, as it marks the run complete
    files = [final, *([output_dir / "adapter"] if peft_model is not None else [])]
    files += [output_dir / "results.json", output_dir / "results.md"]
    if accelerator.is_main_process:
        if peft_model is not None:
            with atomic_folder(output_dir / "adapter", overwrite=True) as folder:
                peft_model.save_pretrained(folder)
        summary = {"results": results, "table": table, "record": record, "sources": sources}
        atomic_write_json(output_dir / "results.json", summary, indent=2, default=str)
        atomic_write_text(output_dir / "results.md", table)
    save_atomically(accelerator, final, write)
    if not run.keep_checkpoints:
        cleanup_checkpoints(accelerator, output_dir)
    accelerator.print(table)
    push_from_main_process(accelerator, final, run.push_to_hub, private=run.hub_private_repo)
    return RealignOutcome(model_dir=final, results=results, table=table, record=record, files=files)


__all__ = ["RealignOutcome", "ensure_single_task_checkpoints", "run_realign"]
