"""Single-task fine-tuning and the joint multi-task (MTL) baseline, both two-stage as in the paper (section 6.1.3).

Stage 1 ("probing") trains the heads on the frozen encoder until the validation loss stops improving; stage 2
fine-tunes encoder and heads together. Both use AdamW, a one-cycle schedule with 5% warm-up, gradient clipping at 25
and early stopping with the best weights restored. A single-task run trains one head and sees only that task's
labels; the MTL run trains every head on the unweighted mean of the task losses (the paper trains its MTL baseline
in the same two phases). The result is a `SimoModel` folder written atomically under ``<output_dir>/model``.

Stage 2 can give the encoder its own, lower learning rate and decay it layer by layer (`stage2_encoder_learning_rate`,
`layer_decay`), as DINOv2-family models are fine-tuned in practice; the defaults train everything at one rate.
The encoder fine-tuned from (θ_0) is `--model_name_or_path`, else the encoder shipped with hf_simo, else (with
`--pretrain_encoder`) one pre-trained on the dataset's images first.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..analysis.task_vectors import encoder_drift as state_drift
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
from ..encoder_families import ENCODER_PREFIX, block_index
from ..errors import TrainingError
from ..hub import HubOptions, PushOptions
from ..image_processing_simo import make_image_processor
from ..metrics import MultiTaskMetrics
from ..modeling_simo import SimoModel, freeze_unused_parameters
from ..utils.logging import get_logger
from .arguments import (
    UNUSED_BY_TRAINING,
    FinetuneArguments,
    MTLArguments,
    RunArguments,
    as_dict,
    identity,
    json_mapping,
)
from .batching import make_eval_loader
from .config import Stage
from .loop import fit
from .optim import no_weight_decay
from .pretrain import default_encoder
from .run import TrainingRun
from .simo_loss import make_simo_loss_fn
from .tracking import finish_tracking, init_tracking
from .validation import evaluate


logger = get_logger(__name__)

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
    """‖θ_t − θ_0‖, ‖θ_0‖, their ratio (task-vector size) and cos(θ_t, θ_0) over the encoder's float parameters."""
    return state_drift(initial, model.dinov2.state_dict())


def encoder_layer_id(name: str, num_layers: int) -> int | None:
    """BEiT/DINOv2 layer ids for layer-wise decay: embeddings 0, block i → i + 1, the final norm L + 1; None for
    parameters outside the encoder (the heads). Blocks in any encoder family (`hf_simo.encoder_families`)."""
    if not name.startswith(ENCODER_PREFIX):
        return None
    if name.startswith(f"{ENCODER_PREFIX}embeddings."):
        return 0
    block = block_index(name[len(ENCODER_PREFIX) :])
    return num_layers + 1 if block is None else block + 1


def layerwise_param_groups(
    model: nn.Module, learning_rate: float, encoder_learning_rate: float, layer_decay: float, weight_decay: float
) -> list[dict[str, Any]]:
    """AdamW groups: the heads at `learning_rate`; encoder layer l at encoder_learning_rate x layer_decay^(L + 1 − l)
    (the final norm undecayed); biases, norms and tokens without weight decay, as `stage_param_groups` does."""
    num_layers = int(model.config.backbone_config.num_hidden_layers)
    groups: dict[tuple[int | None, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        layer = encoder_layer_id(name, num_layers)
        lr = learning_rate if layer is None else encoder_learning_rate * layer_decay ** (num_layers + 1 - layer)
        skip = no_weight_decay(name, param)
        group = groups.setdefault(
            (layer, skip), {"params": [], "lr": lr, "weight_decay": 0.0 if skip else weight_decay, "layer_id": layer}
        )
        group["params"].append(param)
    return list(groups.values())


def check_learning_rates(args: FinetuneArguments | MTLArguments) -> None:
    if args.stage2_encoder_learning_rate is not None and not args.stage2_encoder_learning_rate > 0:
        raise TrainingError(
            f"--stage2_encoder_learning_rate must be > 0, got {args.stage2_encoder_learning_rate}; "
            "freeze the encoder with --stage2_epochs 0 instead"
        )
    if not 0 < args.layer_decay <= 1:
        raise TrainingError(f"--layer_decay must be in (0, 1] (1.0 = no decay), got {args.layer_decay}")


def two_stages(args: FinetuneArguments | MTLArguments, run: RunArguments) -> list[Stage]:
    """Stage 1 trains the heads, stage 2 everything (or layer-wise groups): one loop over the `stage<i>_*` options."""
    trainables = {1: ("stage1_heads", ["heads."]), 2: ("stage2_full", stage2_trainable(args, run))}
    return [
        Stage(
            name,
            trainable=trainable,
            frozen=FROZEN_ALWAYS,
            learning_rate=getattr(args, f"stage{i}_learning_rate"),
            num_epochs=getattr(args, f"stage{i}_epochs"),
            early_stopping_patience=getattr(args, f"stage{i}_patience"),
            **run.stage_defaults(),
        )
        for i, (name, trainable) in trainables.items()
    ]


def stage2_trainable(args: FinetuneArguments | MTLArguments, run: RunArguments) -> Any:
    """Everything at one rate (the default), or layer-wise groups when the encoder has its own rate or decay."""
    encoder_lr = args.stage2_encoder_learning_rate
    if (encoder_lr is None or encoder_lr == args.stage2_learning_rate) and args.layer_decay == 1.0:
        return [""]
    encoder_lr = args.stage2_learning_rate if encoder_lr is None else encoder_lr

    def groups(model: nn.Module) -> list[dict[str, Any]]:
        return layerwise_param_groups(model, args.stage2_learning_rate, encoder_lr, args.layer_decay, run.weight_decay)

    return groups


def base_encoder_identity(args: FinetuneArguments | MTLArguments) -> dict[str, Any]:
    """What the run fine-tunes from, checked before anything is trained: the shipped encoder's digest when it is
    used (so shipping new weights makes a new run), nothing otherwise (the arguments say it)."""
    if args.model_name_or_path is not None and args.pretrain_encoder:
        raise TrainingError(
            "--model_name_or_path and --pretrain_encoder exclude each other: fine-tune a given encoder, or pre-train one"
        )
    if args.encoder_config is not None and not args.pretrain_encoder:
        raise TrainingError("--encoder_config configures --pretrain_encoder; add --pretrain_encoder or drop it")
    if args.model_name_or_path is None and not args.pretrain_encoder:
        from ..encoders import shipped_encoder_digest

        return {"shipped_encoder": shipped_encoder_digest()}
    return {}


def train_simo(
    recipe: str,
    tasks: list[str] | None,
    args: FinetuneArguments | MTLArguments,
    data: DataArguments,
    run: RunArguments,
    hub: HubOptions | None = None,
    push: PushOptions | None = None,
) -> Path:
    """Shared body of `run_finetune` and `run_mtl`; returns the final model folder (absent if interrupted)."""
    check_learning_rates(args)
    specs = select_tasks(dataset_task_specs(data), tasks)
    task_names = list(specs)
    default_dir = f"outputs/{recipe}-{dataset_tag(data)}" + (f"-{task_names[0]}" if recipe == "finetune" else "")
    output_dir = Path(run.output_dir or default_dir)
    job = TrainingRun(
        recipe,
        run,
        output_dir,
        {"resolved_tasks": task_names, **identity(args, data, run, exclude=UNUSED_BY_TRAINING)}
        | base_encoder_identity(args),
        push=push,
        hub=hub,
    )
    accelerator = job.accelerator
    final = job.model_dir
    if job.start() == "complete":
        logger.info("%s: %s is already trained (same arguments); nothing to do", recipe, final)
        job.push()
        return final

    base = args.model_name_or_path
    if args.pretrain_encoder:
        base = str(default_encoder(data, run, args.encoder_config))
        # the pre-training run made its own Accelerator (same shared state); ours keeps its trackers
    elif base is None:
        from ..encoders import shipped_encoder_path

        base = str(shipped_encoder_path())
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
    hub = hub or HubOptions()
    model = SimoModel.from_backbone(
        base,
        tasks=head_specs,
        revision=args.model_revision,
        **hub.model_kwargs(),
    )
    freeze_unused_parameters(model)  # mask token, DPT's unused residual unit: DDP would wait for their gradients
    initial_encoder = {k: v.detach().clone().cpu() for k, v in model.dinov2.state_dict().items()}
    job.claim()
    task_specs = model.config.task_specs
    loss_fn = make_simo_loss_fn(task_specs)
    metrics = MultiTaskMetrics(task_specs, device=accelerator.device)
    init_tracking(accelerator, recipe, {**as_dict(args, data, run), "resolved_tasks": ",".join(task_names)})
    result = fit(
        accelerator,
        model,
        two_stages(args, run),
        train,
        validation,
        loss_fn,
        job.trainer_config(),
        train_transform=make_augmentation(specs) if data.augment else None,
        metrics=metrics,
    )
    if result.interrupted:
        finish_tracking(accelerator)
        logger.info("stopped after %d steps; run the same command to resume", result.state.global_step)
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
    job.finish(lambda tmp: model.save_pretrained(tmp, image_processor=processor), summary)
    logger.info(
        "%s %s: validation %s, ‖τ‖/‖θ0‖ = %.3f, cos(θ_t, θ0) = %.3f; saved %s",
        recipe,
        task_names,
        summary["validation"]["primary"],
        drift["tau_ratio"],
        drift["cosine_to_base"],
        final,
    )
    job.push()
    return final


def sub_run(run: RunArguments, output_dir: str | Path) -> RunArguments:
    """The run settings of a run started by another one (realign's single-task checkpoints): every setting of `run`
    but its folder, which it never replaces, its upload and its stopping point, which are the outer run's."""
    return dataclasses.replace(
        run, output_dir=str(output_dir), overwrite_output_dir=False, push_to_hub=False, stop_after_steps=None
    )


def run_finetune(
    args: FinetuneArguments,
    data: DataArguments,
    run: RunArguments,
    hub: HubOptions | None = None,
    push: PushOptions | None = None,
) -> Path:
    """Fine-tune one task (default: the dataset's first) in two stages; returns the `SimoModel` folder."""
    tasks = None if args.task is None else [args.task]
    if tasks is None:
        tasks = list(dataset_task_specs(data))[:1]
    return train_simo("finetune", tasks, args, data, run, hub, push)


def run_mtl(
    args: MTLArguments,
    data: DataArguments,
    run: RunArguments,
    hub: HubOptions | None = None,
    push: PushOptions | None = None,
) -> Path:
    """Train the joint multi-task baseline on `args.tasks` (default: all); returns the `SimoModel` folder."""
    return train_simo("mtl", list(args.tasks) if args.tasks else None, args, data, run, hub, push)


__all__ = [
    "base_encoder_identity",
    "dataset_task_specs",
    "encoder_drift",
    "encoder_layer_id",
    "layerwise_param_groups",
    "run_finetune",
    "run_mtl",
    "stage2_trainable",
    "sub_run",
    "train_simo",
    "two_stages",
]
