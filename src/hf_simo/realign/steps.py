"""The re-alignment step shared by the realign job and the demo: re-align a merged model on the multi-task
validation split, by head re-alignment on cached features or by representation re-alignment (adapters after each
block, through PEFT, trained with the staged loop), and record what it used (the paper's Table 4 columns).

Head re-alignment caches the features on disk under `<output_dir>/feature_cache` (streamed while computed,
memory-mapped while trained on, removed when done; `feature_cache_dtype` sets its storage dtype); under several
processes each one encodes its share of the images (`hf_simo.evaluation.process_shard`) and every process trains
the heads on the whole assembled cache, so the heads are those one process would train."""

from __future__ import annotations

import copy
import dataclasses
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import OptionError, UnknownTaskError
from ..evaluation import process_shard, simo_batches
from ..modeling_simo import SimoModel
from ..training.accelerator import make_accelerator
from ..training.config import Stage, TrainerConfig
from ..training.loop import fit
from ..training.simo_loss import make_simo_loss_fn
from .feature_cache import compute_feature_cache
from .heads import realign_heads
from .representation import adapter_parameters, fold_adapters, prepare_representation_realignment


FEATURE_CACHE_DIR = "feature_cache"


@dataclass
class RealignmentSettings:
    """How to re-align (see `realign`); the defaults are the embedded benchmark's.

    checkpointing_steps / checkpoints_total_limit / stop_after_steps: representation re-alignment's checkpoints, as
    in `TrainerConfig` (a stage-end checkpoint is always saved; a later call with the same output folder resumes).
    The other loop and optimiser settings are `RunArguments`' (`from_arguments`); the defaults are theirs.
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
    eval_batch_size: int = 64
    max_grad_norm: float = 25.0
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    early_stopping_threshold: float = 0.0
    eval_steps: int | None = None
    logging_steps: int = 10
    dataloader_num_workers: int = 0
    head_weight_decay: float = 1e-4
    feature_cache_dtype: str = "float32"

    @classmethod
    def from_arguments(cls, args, run) -> RealignmentSettings:
        """The settings of `RealignArguments` and `RunArguments`: every option that applies reaches them."""
        return cls(
            mode=args.mode,
            rank=args.rank,
            adapter=args.adapter,
            lora_target_modules=args.lora_target_modules,
            learning_rate=args.learning_rate,
            num_epochs=args.num_train_epochs,
            patience=args.early_stopping_patience,
            batch_size=run.train_batch_size(),
            head_learning_rate=args.head_learning_rate,
            head_epochs=args.head_epochs,
            heldout_fraction=args.heldout_fraction,
            seed=run.seed,
            checkpointing_steps=run.save_steps,
            checkpoints_total_limit=run.save_total_limit,
            stop_after_steps=run.stop_after_steps,
            eval_batch_size=run.per_device_eval_batch_size,
            max_grad_norm=run.max_grad_norm,
            weight_decay=run.weight_decay,
            warmup_ratio=run.warmup_ratio,
            early_stopping_threshold=run.early_stopping_threshold,
            eval_steps=run.eval_steps,
            logging_steps=run.logging_steps,
            dataloader_num_workers=run.dataloader_num_workers,
            head_weight_decay=args.head_weight_decay,
            feature_cache_dtype=args.feature_cache_dtype,
        )


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
        raise OptionError(f"heldout_fraction must be in [0, 1), got {fraction}")
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
) -> tuple[SimoModel, RealignmentRecord, Any]:
    """Re-align a merged model on `dataset` (the multi-task validation split); returns the plain (folded) model,
    the record, and for LoRA the trained `PeftModel` (to save the adapter in PEFT's format), else None.

    Progress bars follow `hf_simo.utils.logging`'s switch (``--disable_tqdm``, ``HF_HUB_DISABLE_PROGRESS_BARS``).

    Representation re-alignment checkpoints into `output_dir` and resumes from its newest checkpoint (the caller
    makes sure the folder holds this run: see `hf_simo.training.run.check_output_dir`). When
    `settings.stop_after_steps` stops it, `record.interrupted` is set and the model returned is unfinished.
    """
    tasks = model.task_names
    missing = [t for t in tasks if t not in dataset.column_names]
    if missing:
        raise UnknownTaskError(
            f"the re-alignment data has no labels for task(s) {missing}; it has {dataset.column_names}"
        )
    start = time.perf_counter()
    if settings.mode == "head":
        batches = simo_batches(process_shard(dataset, accelerator), tasks, batch_size=settings.eval_batch_size)
        cache_dir = Path(output_dir) / FEATURE_CACHE_DIR
        fingerprint = getattr(dataset, "_fingerprint", None)  # a `datasets` split's; else the cache stays in memory
        cache = compute_feature_cache(
            model,
            batches,
            dtype=settings.feature_cache_dtype,
            data_fingerprint=fingerprint,
            cache_dir=cache_dir if fingerprint else None,
            accelerator=accelerator,
        )
        del batches
        if accelerator is not None and accelerator.num_processes > 1:
            from accelerate.utils import set_seed

            set_seed(
                settings.seed
            )  # head dropout draws from the global RNG: the same masks, so the same heads everywhere
        result = realign_heads(
            model,
            cache,
            epochs=settings.head_epochs,
            batch_size=settings.batch_size,
            learning_rate=settings.head_learning_rate,
            weight_decay=settings.head_weight_decay,
            max_grad_norm=settings.max_grad_norm,
            warmup_ratio=settings.warmup_ratio,
            heldout_fraction=settings.heldout_fraction,
            patience=settings.patience or settings.head_epochs,
            seed=settings.seed,
        )
        del cache
        if accelerator is not None:
            accelerator.wait_for_everyone()
        if accelerator is None or accelerator.is_main_process:
            shutil.rmtree(cache_dir, ignore_errors=True)
        if accelerator is not None:  # the trackers of the run (--report_to) get the per-epoch history
            for entry in result.history:
                accelerator.log(
                    {f"realign_heads/{k}": v for k, v in entry.items() if k != "epoch"}, step=entry["epoch"]
                )
        extra = {"best_epoch": result.best_epoch, "learning_rate": settings.head_learning_rate}
        if settings.feature_cache_dtype != "float32":  # the float32 record reads as it did before the option
            extra["feature_cache_dtype"] = settings.feature_cache_dtype
        record = RealignmentRecord(
            mode="head",
            samples=result.train_samples,
            heldout_samples=result.heldout_samples,
            steps=result.steps,
            trainable_parameters=result.trainable_parameters,
            epochs=result.epochs_run,
            seconds=time.perf_counter() - start,
            extra=extra,
        )
        return model, record, None
    if settings.mode != "representation":
        raise OptionError(f"mode must be 'head' or 'representation', got {settings.mode!r}")

    from accelerate.utils import set_seed
    from peft import LoraConfig

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
    accelerator = accelerator or make_accelerator(output_dir, seed=settings.seed, report_to="none")
    config = TrainerConfig(
        output_dir=output_dir,
        train_batch_size=settings.batch_size,
        eval_batch_size=settings.eval_batch_size,
        max_grad_norm=settings.max_grad_norm,
        seed=settings.seed,
        drop_last=False,
        checkpointing_steps=settings.checkpointing_steps,
        checkpoints_total_limit=settings.checkpoints_total_limit,
        logging_steps=settings.logging_steps,
        stop_after_steps=settings.stop_after_steps,
        dataloader_num_workers=settings.dataloader_num_workers,
        project_name="realign",
    )
    stage = Stage(
        "realign_representation",
        trainable=[""],  # only what prepare_representation_realignment left trainable: adapters and heads
        learning_rate=settings.learning_rate,
        num_epochs=settings.num_epochs,
        early_stopping_patience=settings.patience if len(heldout) else None,
        warmup_ratio=settings.warmup_ratio,
        weight_decay=settings.weight_decay,
        min_delta=settings.early_stopping_threshold,
        eval_steps=settings.eval_steps,
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


__all__ = ["FEATURE_CACHE_DIR", "RealignmentRecord", "RealignmentSettings", "realign", "split_heldout"]
