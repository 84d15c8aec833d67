"""The end-to-end steps shared by `recipes/realign.py`, the `hf-simo` verbs, the demo and the benchmarks.

Each step is a plain function over the package's building blocks: build (or reuse) single-task checkpoints and the
MTL baseline with the training recipes, merge them (α tuned on the validation split), re-align the merged model
(heads on cached features, or adapters through PEFT), and evaluate on a held-out split. Data access follows the paper
(section 6.1.4): single-task and MTL training see the training split; merging and re-alignment see only the small
multi-task validation split; every reported number comes from the test split.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .merging.sources import DEFAULT_MAX_RELATIVE_DISTANCE
from .metrics import MultiTaskMetrics
from .modeling_simo import SimoModel
from .processing import normalize_images


# ------------------------------------------------------------------------------------------------ batches


def simo_batches(dataset, tasks: Sequence[str], batch_size: int = 64, limit: int | None = None) -> list[dict]:
    """A `datasets` split in the shared schema -> batches `{"pixel_values": normalized, "labels": {task: ...}}`.

    Contiguous slices (much faster than per-item access with Arrow-backed datasets); held in memory, so use it for
    the small validation/test splits, not for training sets.
    """
    missing = [t for t in tasks if t not in dataset.column_names]
    if missing:
        raise KeyError(f"the dataset has no labels for task(s) {missing}; its columns are {dataset.column_names}")
    dataset = dataset.with_format("torch")
    size = len(dataset) if limit is None else min(limit, len(dataset))
    if size == 0:
        raise ValueError("the dataset split is empty")
    batches = []
    for start in range(0, size, batch_size):
        rows = dataset[start : min(start + batch_size, size)]
        batches.append(
            {"pixel_values": normalize_images(rows["image"].float()), "labels": {t: rows[t] for t in tasks}}
        )
    return batches


@torch.no_grad()
def evaluate_batches(model: SimoModel, batches: Iterable[Mapping[str, Any]], tasks: Sequence[str] | None = None):
    """Metrics of `model` on in-memory batches (single process): task -> {metric: value}."""
    tasks = list(model.task_names if tasks is None else tasks)
    metrics = MultiTaskMetrics({t: model.config.get_task(t) for t in tasks})
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            labels = {t: batch["labels"][t].to(model.device) for t in tasks}
            predictions = model(batch["pixel_values"].to(model.device), tasks=tasks).predictions
            metrics.update(predictions, labels)
    finally:
        model.train(was_training)
    return metrics.compute()


def evaluate_model(model: SimoModel, dataset, *, tasks=None, batch_size: int = 64, accelerator=None):
    """Metrics of `model` on a dataset split. With an `accelerator`, each process evaluates its own shard and the
    states are reduced exactly (`hf_simo.training.evaluate`); without, one process goes through everything."""
    tasks = list(model.task_names if tasks is None else tasks)
    if accelerator is None or accelerator.num_processes == 1:
        return evaluate_batches(model, simo_batches(dataset, tasks, batch_size), tasks)
    from .training import evaluate, make_eval_loader
    from .training.data import make_simo_loss_fn

    specs = {t: model.config.get_task(t) for t in tasks}
    loader = make_eval_loader(dataset.with_format("torch").select_columns(["image", *tasks]), accelerator, batch_size)
    metrics = MultiTaskMetrics(specs, device=accelerator.device)
    return evaluate(accelerator, model, loader, make_simo_loss_fn(specs), metrics)["metrics"]


def primary_values(model_or_specs, results: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    specs = model_or_specs.config.task_specs if isinstance(model_or_specs, SimoModel) else model_or_specs
    return MultiTaskMetrics({t: specs[t] for t in results}).primary(results)


# ------------------------------------------------------------------------------------------------ sources


def parse_task_sources(values: Sequence[str]) -> dict[str, str]:
    """`["seg=org/repo@v1", "path/to/depth"]` -> {task: source} (the merge engine's `NAME=SOURCE` syntax); a source
    without `NAME=` is keyed by the task of its config (a single-task checkpoint)."""
    from .configuration_simo import SimoConfig
    from .hub import resolve_repo
    from .merging.sources import parse_task_spec

    sources: dict[str, str] = {}
    for value in values:
        spec = parse_task_spec(value)
        source = str(spec.name_or_path)
        name = spec.task
        if name is None:
            config = SimoConfig.from_pretrained(resolve_repo(source).path)
            if len(config.tasks) != 1:
                raise ValueError(f"{source} has tasks {config.task_names}; name the one to use as NAME={source}")
            name = config.task_names[0]
        if name in sources:
            raise ValueError(f"task {name!r} is given twice ({sources[name]} and {source}); rename one as NAME=SOURCE")
        sources[name] = source
    return sources


# ------------------------------------------------------------------------------------------------ merging


@dataclass
class MergeOutcome:
    """A merged model and how its α was chosen (the search table, when α was tuned)."""

    model: SimoModel
    method: str
    options: dict[str, Any]
    alpha: float
    search_table: str | None = None
    seconds: float = 0.0


def merge_sources(
    sources: Mapping[str, str],
    *,
    base: str | None = None,
    method: str = "task_arithmetic",
    options: Mapping[str, Any] | None = None,
    alpha: float | None = None,
    alphas: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    validation: Sequence[Mapping[str, Any]] | None = None,
    baselines: Mapping[str, float] | None = None,
    max_relative_distance: float | None = DEFAULT_MAX_RELATIVE_DISTANCE,
    progress: bool = True,
) -> MergeOutcome:
    """Merge single-task checkpoints into one `SimoModel`; with `alpha=None`, tune α on `validation` first.

    `max_relative_distance`: refuse task encoders farther than this from the base (None: warn only; see
    `merging.sources.check_fine_tuned`).
    """
    from .merging import merge, search

    start = time.perf_counter()
    tasks = [f"{name}={source}" for name, source in sources.items()]
    options = dict(options or {})
    table = None
    if alpha is None:
        if validation is None:
            raise ValueError("alpha=None tunes α on validation data; pass validation batches or a fixed alpha")
        result = search(
            tasks,
            validation,
            base,
            method,
            alphas=alphas,
            options=options,
            baselines=baselines,
            max_relative_distance=max_relative_distance,
            progress=progress,
            verbose=False,
        )
        alpha, table = result.best.alpha, result.table()
    model = merge(
        tasks, base, method, options, alpha=alpha, max_relative_distance=max_relative_distance, progress=progress
    )
    return MergeOutcome(model, method, options, float(alpha), table, time.perf_counter() - start)


# ------------------------------------------------------------------------------------------------ relationships


@dataclass
class RelationshipInputs:
    """What a task-relationship sweep needs: θ_0 with every head, the task vectors and the single-task values."""

    model: SimoModel
    base_state: dict[str, torch.Tensor]
    task_vectors: dict[str, dict[str, torch.Tensor]]
    baselines: dict[str, float]


def relationship_inputs(
    sources: Mapping[str, str],
    batches: Sequence[Mapping[str, Any]],
    *,
    base: str | None = None,
    max_relative_distance: float | None = DEFAULT_MAX_RELATIVE_DISTANCE,
    progress: bool = True,
) -> RelationshipInputs:
    """Load θ_0 (with every checkpoint's head attached: a merge with α = 0), the task vectors τ_t = θ_t − θ_0 and
    each single-task model's value on `batches` (the normalization of the sweep)."""
    from .merging import merge

    tasks = [f"{n}={s}" for n, s in sources.items()]
    model = merge(
        tasks, base, "task_arithmetic", alpha=0.0, max_relative_distance=max_relative_distance, progress=progress
    )
    base_state = {k: v.detach().clone() for k, v in model.dinov2.state_dict().items()}
    task_vectors, baselines = {}, {}
    for name, source in sources.items():
        single = SimoModel.from_pretrained(source).eval()
        own = single.task_names[0] if len(single.task_names) == 1 else name
        encoder = single.dinov2.state_dict()
        task_vectors[name] = {k: encoder[k] - base_state[k] for k in base_state if base_state[k].is_floating_point()}
        renamed = [{"pixel_values": b["pixel_values"], "labels": {own: b["labels"][name]}} for b in batches]
        baselines[name] = primary_values(single, evaluate_batches(single, renamed, [own]))[own]
    return RelationshipInputs(model.eval(), base_state, task_vectors, baselines)


def run_relationships(
    task_checkpoints: Sequence[str],
    *,
    base: str | None = None,
    dataset: str = "nyuv2",
    dataset_path: str | None = None,
    image_size: int = 64,
    samples: int = 200,
    lambdas: Sequence[float] | None = None,
    batch_size: int = 64,
    max_relative_distance: float | None = DEFAULT_MAX_RELATIVE_DISTANCE,
    progress: bool = True,
):
    """The `hf-simo relationships` sweep on a dataset's validation split; returns (RelationshipResult, files)."""
    from .analysis import sweep_task_vectors
    from .training.data import load_training_data

    sources = parse_task_sources(task_checkpoints)
    data = load_training_data(
        dataset, dataset_path=dataset_path, image_size=image_size, validation_samples=samples, train_samples=0
    )
    batches = simo_batches(data["validation"], list(sources), batch_size, limit=samples)
    inputs = relationship_inputs(
        sources, batches, base=base, max_relative_distance=max_relative_distance, progress=progress
    )
    result = sweep_task_vectors(
        inputs.model, inputs.base_state, inputs.task_vectors, lambdas, batches, inputs.baselines, progress=progress
    )
    return result, []


# ------------------------------------------------------------------------------------------------ re-alignment


@dataclass
class RealignmentSettings:
    """How to re-align (see `realign`); the defaults are the embedded benchmark's.

    checkpointing_steps / checkpoints_total_limit / stop_after_steps: representation re-alignment's checkpoints, as
    in `TrainerConfig` (a stage-end checkpoint is always saved; a later call with the same output folder resumes).
    """

    mode: str = "representation"
    rank: int = 16
    adapter: str = "lora"
    lora_target_modules: list[str] | None = None
    learning_rate: float = 1e-3
    num_epochs: int = 30
    patience: int | None = 5
    batch_size: int = 16
    head_learning_rate: float = 1e-3
    head_epochs: int = 50
    heldout_fraction: float = 0.2
    seed: int = 0
    checkpointing_steps: int | None = None
    checkpoints_total_limit: int | None = 2
    stop_after_steps: int | None = None


@dataclass
class RealignmentRecord:
    """What re-alignment used (Table 4's columns) and where it stopped; stored in `config.realignment`."""

    mode: str
    samples: int
    heldout_samples: int
    steps: int
    trainable_parameters: int
    adapter_parameters: int = 0
    rank: int | None = None
    adapter: str | None = None
    epochs: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False  # stopped by stop_after_steps: resume with the same call

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(data.pop("extra"))
        if not data["interrupted"]:
            del data["interrupted"]
        return data


def split_heldout(dataset, fraction: float, seed: int = 0):
    """(train, held-out) parts of the re-alignment set, disjoint, chosen by a seeded permutation."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {fraction}")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    n_heldout = max(1, int(round(len(dataset) * fraction))) if fraction > 0 else 0
    return dataset.select(sorted(order[n_heldout:])), dataset.select(sorted(order[:n_heldout]))


def realign(
    model: SimoModel,
    dataset,
    settings: RealignmentSettings,
    *,
    output_dir: str | Path,
    accelerator=None,
    progress: bool = True,
) -> tuple[SimoModel, RealignmentRecord, Any]:
    """Re-align a merged model on `dataset` (the multi-task validation split); returns the plain (folded) model,
    the record, and for LoRA the trained `PeftModel` (to save the adapter in PEFT's format), else None.

    Representation re-alignment checkpoints into `output_dir` and resumes from its newest checkpoint (the caller
    makes sure the folder holds this run: see `hf_simo.training.run.check_output_dir`). When
    `settings.stop_after_steps` stops it, `record.interrupted` is set and the model returned is unfinished.
    """
    from .realign import adapter_parameters, fold_adapters, prepare_representation_realignment, realign_heads

    tasks = model.task_names
    missing = [t for t in tasks if t not in dataset.column_names]
    if missing:
        raise KeyError(f"the re-alignment data has no labels for task(s) {missing}; it has {dataset.column_names}")
    start = time.perf_counter()
    if settings.mode == "head":
        batches = simo_batches(dataset, tasks, batch_size=64)
        result = realign_heads(
            model,
            batches,
            epochs=settings.head_epochs,
            batch_size=settings.batch_size,
            learning_rate=settings.head_learning_rate,
            heldout_fraction=settings.heldout_fraction,
            patience=settings.patience or settings.head_epochs,
            seed=settings.seed,
            progress=progress,
        )
        record = RealignmentRecord(
            mode="head",
            samples=result.train_samples,
            heldout_samples=result.heldout_samples,
            steps=result.steps,
            trainable_parameters=result.trainable_parameters,
            epochs=result.epochs_run,
            seconds=time.perf_counter() - start,
            extra={"best_epoch": result.best_epoch, "learning_rate": settings.head_learning_rate},
        )
        return model, record, None
    if settings.mode != "representation":
        raise ValueError(f"mode must be 'head' or 'representation', got {settings.mode!r}")

    from accelerate.utils import set_seed
    from peft import LoraConfig

    from .training import Stage, TrainerConfig, fit, make_accelerator
    from .training.data import make_simo_loss_fn

    # PEFT initialises LoRA's A matrices (kaiming uniform) from the global RNG, which torch seeds randomly in every
    # process: without this, two identical runs start from different adapters.
    set_seed(settings.seed)
    lora_config = None
    if settings.lora_target_modules:
        lora_config = LoraConfig(
            r=settings.rank, lora_alpha=settings.rank, target_modules=list(settings.lora_target_modules)
        )
    trainable = prepare_representation_realignment(
        model, rank=settings.rank, variant=settings.adapter, lora_config=lora_config
    )
    train, heldout = split_heldout(dataset, settings.heldout_fraction, settings.seed)
    columns = ["image", *tasks]
    train, heldout = train.select_columns(columns), heldout.select_columns(columns)
    accelerator = accelerator or make_accelerator(output_dir, seed=settings.seed, log_with="none")
    config = TrainerConfig(
        output_dir=output_dir,
        train_batch_size=settings.batch_size,
        eval_batch_size=64,
        seed=settings.seed,
        progress_bar=progress,
        drop_last=False,
        checkpointing_steps=settings.checkpointing_steps,
        checkpoints_total_limit=settings.checkpoints_total_limit,
        stop_after_steps=settings.stop_after_steps,
    )
    stage = Stage(
        "realign_representation",
        trainable=[""],  # only what prepare_representation_realignment left trainable: adapters and heads
        learning_rate=settings.learning_rate,
        num_epochs=settings.num_epochs,
        early_stopping_patience=settings.patience if len(heldout) else None,
    )
    counted = sum(p.numel() for p in trainable.parameters() if p.requires_grad)
    adapters = adapter_parameters(trainable)
    result = fit(
        accelerator,
        trainable,
        [stage],
        train,
        heldout if len(heldout) else train,
        make_simo_loss_fn(model.config.tasks),
        config,
    )
    peft_model = result.model
    steps = max((r.get("stage_step", 0) for r in result.history), default=0)
    epochs = math.ceil(max((r.get("epoch", 0) + 1 for r in result.history), default=0))  # records: 0-based epochs
    record = RealignmentRecord(
        mode="representation",
        samples=len(train),
        heldout_samples=len(heldout),
        steps=int(result.state.global_step if result.interrupted else steps),
        trainable_parameters=counted,
        adapter_parameters=adapters,
        rank=settings.rank,
        adapter="lora:" + ",".join(settings.lora_target_modules) if settings.lora_target_modules else settings.adapter,
        epochs=int(epochs),
        seconds=time.perf_counter() - start,
        extra={"learning_rate": settings.learning_rate},
        interrupted=result.interrupted,
    )
    if result.interrupted:
        return model, record, None
    unwrapped = accelerator.unwrap_model(peft_model)
    saved_peft = copy.deepcopy(unwrapped) if settings.adapter == "lora" else None
    return fold_adapters(unwrapped), record, saved_peft


__all__ = [
    "MergeOutcome",
    "RelationshipInputs",
    "RealignmentRecord",
    "RealignmentSettings",
    "evaluate_batches",
    "evaluate_model",
    "merge_sources",
    "parse_task_sources",
    "primary_values",
    "realign",
    "relationship_inputs",
    "run_relationships",
    "simo_batches",
    "split_heldout",
]
