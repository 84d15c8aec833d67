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
from ..hub import HubOptions, PushOptions
from ..metrics import render_table
from ..modeling_simo import SimoModel
from ..utils.logging import get_logger
from .arguments import RealignArguments, check_arguments


logger = get_logger(__name__)

# RunArguments fields each mode cannot use: a value other than the default is refused (it would be dropped)
TRAINING_FIELDS = (
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "mixed_precision",
    "max_grad_norm",
    "weight_decay",
    "warmup_ratio",
    "early_stopping_threshold",
    "eval_steps",
    "save_steps",
    "save_total_limit",
    "logging_steps",
    "dataloader_num_workers",
)
HEAD_USES = ("per_device_train_batch_size", "max_grad_norm", "warmup_ratio")  # what realign_heads receives
UNUSED_BY_MODE = {"head": tuple(f for f in TRAINING_FIELDS if f not in HEAD_USES), "none": TRAINING_FIELDS}
MODE_REASON = {
    "head": "head re-alignment trains on cached features (every process the same heads), in fp32, one evaluation "
    "per epoch, without checkpoints (its weight decay is --head_weight_decay)",
    "none": "--mode none trains nothing",
}


@dataclass
class RealignOutcome:
    """What the job produced (`interrupted`: stopped by --stop_after_steps, nothing saved but the checkpoint)."""

    model_dir: Path
    results: dict[str, dict[str, dict[str, float]]]
    table: str
    record: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    interrupted: bool = False


def ensure_single_task_checkpoints(tasks: list[str], data, run, hub: HubOptions | None = None) -> dict[str, str]:
    """The embedded single-task checkpoints, trained with the fine-tuning recipe when missing (cached): every run
    setting of the realign job reaches them (`sub_run`), each in the recipe's default folder; `hub`: how the
    encoder they start from is read."""
    from ..training.arguments import FinetuneArguments
    from ..training.finetune import dataset_tag, run_finetune, sub_run

    sources = {}
    for task in tasks:
        folder = f"outputs/finetune-{dataset_tag(data)}-{task}"
        try:
            sources[task] = str(run_finetune(FinetuneArguments(task=task), data, sub_run(run, folder), hub))
        except RunConflictError as err:
            raise RunConflictError(
                f"the single-task checkpoint of {task!r} in {folder} was trained with other settings ({err}); give "
                "--task_checkpoints, or move that folder away to retrain it with these settings"
            ) from err
    return sources


def check_realign_options(args: RealignArguments, source, method, data, run) -> None:
    """Refuse, before any work, every option this re-alignment would drop (one line naming the option)."""
    from ..training.accelerator import resolve_launch_setting
    from ..training.arguments import RunArguments

    check_arguments(args)
    if run.stop_after_steps is not None and args.mode != "representation":
        raise OptionError(
            "--stop_after_steps applies to --mode representation (adapter training, checkpointed); head "
            "re-alignment trains on cached features and is not checkpointed"
        )
    if args.feature_cache_dtype != "float32" and args.mode != "head":
        raise OptionError(
            f"--feature_cache_dtype {args.feature_cache_dtype} applies to --mode head (the features head "
            "re-alignment caches); --mode representation runs the encoder on every batch"
        )
    defaults = RunArguments()
    resolved = {
        "mixed_precision": (resolve_launch_setting("mixed_precision", run.mixed_precision), "no"),
        "gradient_accumulation_steps": (
            resolve_launch_setting("gradient_accumulation_steps", run.gradient_accumulation_steps),
            1,
        ),
    }
    for name in UNUSED_BY_MODE.get(args.mode, ()):
        value, default = resolved.get(name, (getattr(run, name), getattr(defaults, name)))
        if value != default:
            raise OptionError(f"--{name} {value} does not apply to --mode {args.mode} ({MODE_REASON[args.mode]})")
    if source.task_checkpoints:
        for name, default in (("max_train_samples", None), ("augment", True)):
            if getattr(data, name) != default:
                raise OptionError(
                    f"--{name} applies only when realign trains its own single-task checkpoints (without "
                    "--task_checkpoints)"
                )
    if method.coefficients is not None:
        raise OptionError("--coefficients is a merge option (hf-simo merge); realign merges with one α")
    if method.alpha is None and not args.alpha_grid:
        raise OptionError("--alpha_grid is empty; give α values to search or a fixed --alpha")


def run_realign(
    args: RealignArguments,
    source,
    method,
    data,
    run,
    hub: HubOptions | None = None,
    push: PushOptions | None = None,
) -> RealignOutcome:
    """Merge → re-align on validation → evaluate on test → save; see the module docstring.

    `source`/`method`: `hf_simo.merging.arguments.SourceArguments` / `MergeMethodArguments`; `data`, `run`:
    `DataArguments`, `RunArguments`; `hub`: how the sources are read (`HubOptions`: token, cache, offline,
    pickle), `push`: where the result is pushed (`PushOptions`; the push's token is `hub.token`).
    """
    from ..atomic import atomic_folder, atomic_write_json, atomic_write_text
    from ..cards import write_model_card
    from ..data import load_data
    from ..evaluation import evaluate, evaluate_dataset, primary_values, process_shard, simo_batches
    from ..image_processing_simo import make_image_processor
    from ..merging import parse_task_sources, search_and_merge
    from ..training.arguments import identity
    from ..training.finetune import dataset_tag, dataset_task_specs, image_size_of
    from ..training.run import MODEL_DIR, TrainingRun
    from .steps import RealignmentSettings, realign

    check_realign_options(args, source, method, data, run)
    hub = hub or HubOptions()
    options = method.method_options()
    output_dir = Path(run.output_dir or f"outputs/realign-{dataset_tag(data)}-{method.merge_method}-{args.mode}")
    if (output_dir / MODEL_DIR).exists() and not run.overwrite_output_dir:
        raise RunConflictError(f"{output_dir}/model already exists; pass --overwrite_output_dir to replace it")
    # what the run computes: the same arguments resume an interrupted run's checkpoint, others are refused
    job = TrainingRun("realign", run, output_dir, identity(args, source, method, data, run), push=push, hub=hub)
    accelerator = job.accelerator
    job.start()

    specs = dataset_task_specs(data)
    if source.task_checkpoints:
        sources = parse_task_sources(source.task_checkpoints, hub=hub)
        unknown = [t for t in sources if t not in specs]
        if unknown:
            raise UnknownTaskError(
                f"checkpoint task(s) {unknown} are not in dataset {data.dataset!r}; it has tasks {list(specs)} "
                "(rename a checkpoint's task with NAME=SOURCE)"
            )
    else:
        with accelerator.main_process_first():
            sources = ensure_single_task_checkpoints(list(specs), data, run, hub)
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
    if data.max_eval_samples:
        realign_set = realign_set.select(range(min(data.max_eval_samples, len(realign_set))))
    test = datasets["test"]
    eval_batch_size = run.per_device_eval_batch_size

    # single-task baselines on validation (for α) and on test (for the table); under several processes each one
    # evaluates its own share of the validation split, here and in the α search, with the metrics reduced exactly
    singles = {t: SimoModel.from_task_source(sources[t], t, **hub.model_kwargs()).eval() for t in tasks}
    validation_batches = simo_batches(process_shard(realign_set, accelerator), tasks, eval_batch_size)
    val_baselines = {
        t: primary_values(singles[t], evaluate(singles[t], validation_batches, [t], accelerator=accelerator))[t]
        for t in tasks
    }
    results: dict[str, dict[str, dict[str, float]]] = {"Single-task": {}}
    for t in tasks:
        results["Single-task"][t] = evaluate_dataset(
            singles[t], test, tasks=[t], batch_size=eval_batch_size, accelerator=accelerator
        )[t]
    del singles

    merged = search_and_merge(
        sources,
        base=source.base_model,
        method=method.merge_method,
        options=options,
        alpha=method.alpha,
        alphas=args.alpha_grid,
        validation=validation_batches,
        baselines=val_baselines,
        max_relative_distance=source.distance_limit,
        hub=hub,
        accelerator=accelerator,
    )
    if merged.search_table:
        logger.info("α search on the validation split:\n%s", merged.search_table)
    model = merged.model
    hidden = model.config.backbone_config.hidden_size
    if args.mode == "representation" and args.rank > hidden:
        raise OptionError(f"--rank {args.rank} is larger than the encoder's hidden size {hidden}")
    # the inputs passed every check (the merge's included): claim the folder; a previous model stays in place until
    # the new one replaces it
    job.claim(keep=(MODEL_DIR,))
    label = {"task_arithmetic": "TA", "ties": "TIES"}.get(method.merge_method, method.merge_method)
    results[label] = evaluate_dataset(model, test, batch_size=eval_batch_size, accelerator=accelerator)

    record: dict[str, Any] = {"merge_seconds": merged.seconds, "alpha": merged.alpha}
    peft_model = None
    if args.mode != "none":
        from ..training.arguments import as_dict
        from ..training.tracking import finish_tracking, init_tracking

        init_tracking(accelerator, "realign", as_dict(args, source, method, data, run))
        settings = RealignmentSettings.from_arguments(args, run)
        model, realignment, peft_model = realign(
            model,
            realign_set,
            settings,
            output_dir=output_dir,
            accelerator=accelerator,
        )
        finish_tracking(accelerator)
        if realignment.interrupted:
            logger.info(
                "stopped after %d re-alignment steps (checkpoint in %s); run the same command to resume",
                realignment.steps,
                output_dir,
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
        results[label] = evaluate_dataset(model, test, batch_size=eval_batch_size, accelerator=accelerator)

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
    job.finish(write)
    job.push(final)
    return RealignOutcome(model_dir=final, results=results, table=table, record=record, files=files)


__all__ = ["RealignOutcome", "check_realign_options", "ensure_single_task_checkpoints", "run_realign"]
