"""Single-task fine-tuning and the joint multi-task (MTL) baseline, both two-stage as in the paper (section 6.1.3).

Stage 1 ("probing") trains the heads on the frozen encoder until the validation loss stops improving; stage 2
fine-tunes encoder and heads together. Both use AdamW, a one-cycle schedule with 5% warm-up, gradient clipping at 25
and early stopping with the best weights restored. A single-task run trains one head and sees only that task's
labels; the MTL run trains every head on the unweighted mean of the task losses (the paper trains its MTL baseline
in the same two phases). The result is a `SimoModel` folder written atomically under ``<output_dir>/model``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ..data import (
    BENCHMARK_PRESETS,
    REAL_DATASETS,
    DataArguments,
    check_splits,
    load_data,
    load_training_data,
    make_augmentation,
    select_tasks,
    task_columns,
)
from ..image_processing_simo import make_image_processor
from ..metrics import MultiTaskMetrics
from ..modeling_simo import SimoModel, freeze_unused_parameters
from .arguments import (
    UNUSED_BY_TRAINING,
    FinetuneArguments,
    MTLArguments,
    RunArguments,
    as_dict,
    identity,
    json_mapping,
)
from .data import make_simo_loss_fn
from .loop import Stage, evaluate, fit, make_eval_loader
from .pretrain import default_encoder
from .run import (
    check_output_dir,
    claim_output_dir,
    cleanup_checkpoints,
    model_dir,
    push_from_main_process,
    save_atomically,
    write_summary,
)
from .utils import configure_threads, finish_tracking, init_tracking, make_accelerator


logger = logging.getLogger(__name__)

FROZEN_ALWAYS = ("dinov2.embeddings.mask_token",)  # unused without masked-image inputs


def dataset_task_specs(data: DataArguments) -> dict[str, dict[str, Any]]:
    """Task specs of the dataset without building it (presets and real datasets) or from its saved metadata."""
    from ..data import get_task_specs

    if data.dataset in BENCHMARK_PRESETS:
        return get_task_specs(data.dataset)
    if data.dataset in REAL_DATASETS:
        return get_task_specs({"taskonomy_real": "taskonomy_real"}.get(data.dataset, data.dataset))
    return get_task_specs(load_training_data(data.dataset))


def image_size_of(dataset) -> tuple[int, int]:
    """(height, width) of a dataset's images (the first one; the datasets here have one size)."""
    height, width = dataset[0]["image"].shape[-2:]
    return int(height), int(width)


def dataset_tag(data: DataArguments) -> str:
    return data.dataset if data.dataset in (*BENCHMARK_PRESETS, *REAL_DATASETS) else Path(data.dataset).name


def encoder_drift(initial: dict[str, torch.Tensor], model: SimoModel) -> dict[str, float]:
    """‖θ_t − θ_0‖ and ‖θ_0‖ over the encoder's floating-point parameters, and their ratio (task-vector size)."""
    diff_sq, base_sq = 0.0, 0.0
    current = model.dinov2.state_dict()
    for name, start in initial.items():
        if not start.is_floating_point() or name not in current:
            continue
        end = current[name].detach().to(device="cpu", dtype=torch.float64)
        start = start.to(torch.float64)
        diff_sq += float((end - start).pow(2).sum())
        base_sq += float(start.pow(2).sum())
    return {"tau_norm": diff_sq**0.5, "theta0_norm": base_sq**0.5, "tau_ratio": (diff_sq / max(base_sq, 1e-30)) ** 0.5}


def two_stages(args: FinetuneArguments | MTLArguments, run: RunArguments) -> list[Stage]:
    common = dict(
        frozen=FROZEN_ALWAYS,
        warmup_ratio=run.warmup_ratio,
        weight_decay=run.weight_decay,
        min_delta=run.early_stopping_min_delta,
        eval_steps=run.eval_steps,
    )
    return [
        Stage(
            "stage1_heads",
            trainable=["heads."],
            learning_rate=args.stage1_learning_rate,
            num_epochs=args.stage1_epochs,
            early_stopping_patience=args.stage1_patience,
            **common,
        ),
        Stage(
            "stage2_full",
            trainable=[""],
            learning_rate=args.stage2_learning_rate,
            num_epochs=args.stage2_epochs,
            early_stopping_patience=args.stage2_patience,
            **common,
        ),
    ]


def train_simo(
    recipe: str,
    tasks: list[str] | None,
    args: FinetuneArguments | MTLArguments,
    data: DataArguments,
    run: RunArguments,
) -> Path:
    """Shared body of `run_finetune` and `run_mtl`; returns the final model folder (absent if interrupted)."""
    configure_threads(run.num_threads)
    specs = select_tasks(dataset_task_specs(data), tasks)
    task_names = list(specs)
    default_dir = f"outputs/{recipe}-{dataset_tag(data)}" + (f"-{task_names[0]}" if recipe == "finetune" else "")
    output_dir = Path(run.output_dir or default_dir)
    accelerator = make_accelerator(
        output_dir,
        mixed_precision=run.mixed_precision,
        gradient_accumulation_steps=run.gradient_accumulation_steps,
        seed=run.seed,
        log_with=run.log_with,
        run_name=recipe,
    )
    run_args = {
        "recipe": recipe,
        "resolved_tasks": task_names,
        **identity(args, data, run, exclude=UNUSED_BY_TRAINING),
    }
    status = check_output_dir(accelerator, output_dir, run_args, run.overwrite_output_dir)
    final = model_dir(output_dir)
    if status == "complete":
        accelerator.print(f"{recipe}: {final} is already trained (same arguments); nothing to do")
        _maybe_push(accelerator, final, run)
        return final

    base = args.model_name_or_path
    if base is None:
        base = str(default_encoder(data, run, args.encoder_config))
        # the pre-training run made its own Accelerator (same shared state); ours keeps its trackers
    with accelerator.main_process_first():
        datasets = load_data(data)
    check_splits(datasets)
    train = task_columns(datasets["train"], task_names)
    validation = task_columns(datasets["validation"], task_names)
    if data.max_train_samples:
        train = train.select(range(min(len(train), data.max_train_samples)))
    if data.max_eval_samples:
        validation = validation.select(range(min(len(validation), data.max_eval_samples)))

    from accelerate.utils import set_seed

    set_seed(run.seed)
    head_specs = {
        name: {**spec, "head": args.head, "head_options": json_mapping(args.head_options, "--head_options")}
        for name, spec in specs.items()
    }
    model = SimoModel.from_backbone(base, tasks=head_specs, revision=args.model_revision)
    freeze_unused_parameters(model)  # mask token, DPT's unused residual unit: DDP would wait for their gradients
    initial_encoder = {k: v.detach().clone().cpu() for k, v in model.dinov2.state_dict().items()}
    claim_output_dir(accelerator, output_dir, run_args, status)
    task_specs = model.config.task_specs
    loss_fn = make_simo_loss_fn(task_specs)
    metrics = MultiTaskMetrics(task_specs, device=accelerator.device)
    config = run.trainer_config(output_dir)
    init_tracking(accelerator, recipe, {**as_dict(args, data, run), "resolved_tasks": ",".join(task_names)})
    result = fit(
        accelerator,
        model,
        two_stages(args, run),
        train,
        validation,
        loss_fn,
        config,
        train_transform=make_augmentation(specs) if data.augment else None,
        metrics=metrics,
    )
    if result.interrupted:
        finish_tracking(accelerator)
        accelerator.print(f"stopped after {result.state.global_step} steps; run the same command to resume")
        return final
    model = result.model
    final_eval = evaluate(
        accelerator,
        model,
        make_eval_loader(validation, accelerator, run.per_device_eval_batch_size),
        loss_fn,
        metrics,
    )
    drift = encoder_drift(initial_encoder, model)
    accelerator.log({"final/eval_loss": final_eval["loss"], "final/tau_ratio": drift["tau_ratio"]})
    finish_tracking(accelerator)
    # the processor resizes inference images to the training images' size (the heads learnt at that scale)
    processor = make_image_processor(model.config, size=image_size_of(train))
    save_atomically(accelerator, final, lambda tmp: model.save_pretrained(tmp, image_processor=processor))
    stage_steps: dict[str, int] = {}
    for record in result.history:
        stage_steps[record["stage"]] = record["stage_step"]
    summary = {
        "recipe": recipe,
        "tasks": task_names,
        "base_model": base,
        "model": str(final),
        "num_processes": accelerator.num_processes,
        "train_seconds": result.train_seconds,
        "stage_steps": stage_steps,
        "encoder_drift": drift,
        "validation": {
            "loss": final_eval["loss"],
            "metrics": final_eval.get("metrics"),
            "primary": metrics.primary(final_eval["metrics"]),
        },
        "history": result.history,
    }
    write_summary(accelerator, output_dir, summary)
    if not run.keep_checkpoints:
        cleanup_checkpoints(accelerator, output_dir)
    accelerator.print(
        f"{recipe} {task_names}: validation {summary['validation']['primary']}, "
        f"‖τ‖/‖θ0‖ = {drift['tau_ratio']:.3f}; saved {final}"
    )
    _maybe_push(accelerator, final, run)
    return final


def _maybe_push(accelerator, folder: Path, run: RunArguments) -> None:
    push_from_main_process(accelerator, folder, run.push_to_hub, private=run.hub_private_repo)


def run_finetune(args: FinetuneArguments, data: DataArguments, run: RunArguments) -> Path:
    """Fine-tune one task (default: the dataset's first) in two stages; returns the `SimoModel` folder."""
    tasks = None if args.task is None else [args.task]
    if tasks is None:
        tasks = list(dataset_task_specs(data))[:1]
    return train_simo("finetune", tasks, args, data, run)


def run_mtl(args: MTLArguments, data: DataArguments, run: RunArguments) -> Path:
    """Train the joint multi-task baseline on `args.tasks` (default: all); returns the `SimoModel` folder."""
    return train_simo("mtl", list(args.tasks) if args.tasks else None, args, data, run)


__all__ = ["dataset_task_specs", "encoder_drift", "run_finetune", "run_mtl", "train_simo", "two_stages"]
