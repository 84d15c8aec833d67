"""A small DINOv2 encoder pre-trained from scratch on the benchmark images with masked image modelling (SimMIM).

Why SimMIM: it needs no labels, no teacher network and no multi-crop, it trains a plain `Dinov2Model` through the
model's own `mask_token` / `bool_masked_pos` (so the result is a standard DINOv2 checkpoint), and predicting masked
pixels from context teaches the local geometry and texture cues that dense tasks read. A linear decoder maps each
final patch token to the pixels of its patch (SimMIM's one-layer head); the loss is the L1 error on the masked
patches, optionally on per-patch normalised pixels (MAE's norm-pix target). Contrastive or self-distillation
objectives (DINO) need momentum teachers, many views and far more steps than a few CPU minutes to avoid collapse.

The encoder is saved as a `Dinov2Model` folder (config.json + model.safetensors) that every recipe accepts in place
of `facebook/dinov2-base`, next to the run's record: `run_args.json`, `training_summary.json` (with the git commit),
`loss_curve.jsonl` and `loss_curve.png`. The encoder shipped with hf_simo (`hf_simo.encoders`) is such a run on the
pre-training set (`--dataset pretraining`, `recipes/configs/pretrain_encoder_shipped.yaml`), turned into package data
by `recipes/ship_encoder.py`. `default_encoder` (`--pretrain_encoder` of the other recipes) builds a quick one on
first use under `$HF_HOME/hf_simo/encoders/<key>`, keyed by the arguments that define it, so later runs with the
same arguments reuse it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import Dinov2Config, Dinov2Model

from ..atomic import atomic_write_json, atomic_write_text
from ..data import DataArguments, check_splits, load_data
from ..errors import DataError
from ..hub import PushOptions
from ..processing import normalize_images
from ..utils.fields import dataclass_from_yaml
from ..utils.logging import get_logger
from .arguments import PRETRAIN_TRAIN_BATCH_SIZE, UNUSED_BY_TRAINING, EncoderArguments, RunArguments, as_dict, identity
from .config import Stage, StepOutput
from .loop import fit
from .run import TrainingRun, source_revision
from .tracking import finish_tracking, init_tracking, read_jsonl


RUN_NAME = "pretrain_encoder"
LOSS_CURVE_NAME = "loss_curve.jsonl"
REVISION_NAME = "source_revision.json"


logger = get_logger(__name__)


class MaskedImageModeling(nn.Module):
    """SimMIM around a `Dinov2Model`: masked patches become `mask_token`, a linear decoder predicts their pixels."""

    def __init__(self, encoder: Dinov2Model, norm_pix_loss: bool = True):
        super().__init__()
        self.dinov2 = encoder
        config = encoder.config
        self.patch_size = int(config.patch_size)
        self.norm_pix_loss = norm_pix_loss
        self.decoder = nn.Linear(config.hidden_size, self.patch_size**2 * config.num_channels)
        self.dinov2.embeddings.mask_token.requires_grad_(True)

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, p*p*C) in the patch order of the encoder's tokens."""
        p = self.patch_size
        b, c, h, w = images.shape
        x = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, (h // p) * (w // p), p * p * c)

    def forward(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (mean loss, per-sample loss) over the masked patches."""
        tokens = self.dinov2(pixel_values, bool_masked_pos=bool_masked_pos).last_hidden_state[:, 1:]
        prediction = self.decoder(tokens)
        target = self.patchify(pixel_values).to(prediction.dtype)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        error = (prediction.float() - target.float()).abs().mean(dim=-1)
        mask = bool_masked_pos.float()
        per_sample = (error * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        return per_sample.mean(), per_sample


def make_mask_transform(
    image_size: int, patch_size: int, mask_ratio: float, mask_patch_size: int, augment: bool = True
):
    """Batch transform adding `bool_masked_pos` (block masks of `mask_patch_size` pixels) and, when `augment`,
    a random scale-crop and horizontal flip of the images. Drawn from the loop's per-batch generator."""
    if mask_patch_size % patch_size:
        raise ValueError(f"mask_patch_size ({mask_patch_size}) must be a multiple of patch_size ({patch_size})")
    if image_size % mask_patch_size:
        raise ValueError(f"image_size ({image_size}) must be a multiple of mask_patch_size ({mask_patch_size})")
    if not 0 < mask_ratio < 1:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    blocks = image_size // mask_patch_size
    scale = mask_patch_size // patch_size
    num_masked = max(1, int(round(mask_ratio * blocks * blocks)))

    def transform(batch: dict[str, Any], generator: torch.Generator) -> dict[str, Any]:
        images = batch["image"]
        b = images.shape[0]
        if augment:
            from ..data import random_scale_crop

            images = random_scale_crop({"image": images}, {}, generator=generator)["image"]
            flip = (torch.rand(b, generator=generator) < 0.5).to(images.device).view(-1, 1, 1, 1)
            images = torch.where(flip, images.flip(-1), images)
        order = torch.rand(b, blocks * blocks, generator=generator).argsort(dim=1)
        mask = torch.zeros(b, blocks * blocks, dtype=torch.bool)
        mask.scatter_(1, order[:, :num_masked], True)
        mask = mask.view(b, blocks, blocks).repeat_interleave(scale, 1).repeat_interleave(scale, 2)
        return {"image": images, "bool_masked_pos": mask.reshape(b, -1).to(images.device)}

    return transform


def mim_loss(model: nn.Module, batch: dict[str, Any]) -> StepOutput:
    loss, per_sample = model(normalize_images(batch["image"]), batch["bool_masked_pos"])
    return StepOutput(loss=loss, sample_losses=None if model.training else per_sample.detach())


def encoder_config(args: EncoderArguments, image_size: int) -> Dinov2Config:
    return Dinov2Config(
        hidden_size=args.hidden_size,
        num_hidden_layers=args.num_hidden_layers,
        num_attention_heads=args.num_attention_heads,
        mlp_ratio=args.mlp_ratio,
        patch_size=args.patch_size,
        image_size=image_size,
    )


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encoder_cache_dir(encoder: EncoderArguments, data: DataArguments, run: RunArguments) -> Path:
    """`$HF_HOME/hf_simo/encoders/<key>`: the key hashes every argument that changes the encoder (the run settings
    with the launch's precision and accumulation included), so a run with other settings gets its own encoder."""
    from ..data import default_cache_root
    from .accelerator import resolve_launch_setting

    key = identity(encoder, data, run, exclude=UNUSED_BY_TRAINING) | {
        "mixed_precision": resolve_launch_setting("mixed_precision", run.mixed_precision),
        "gradient_accumulation_steps": resolve_launch_setting(
            "gradient_accumulation_steps", run.gradient_accumulation_steps
        ),
    }
    tag = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(data.dataset).name) or "dataset"
    name = f"{tag}-h{encoder.hidden_size}-l{encoder.num_hidden_layers}-p{encoder.patch_size}-{_digest(key)}"
    return default_cache_root() / "encoders" / name


def pretrain_encoder(
    encoder: EncoderArguments, data: DataArguments, run: RunArguments, push: PushOptions | None = None
) -> Path:
    """Pre-train (or resume, or reuse) the small encoder; returns the `Dinov2Model` folder."""
    output_dir = Path(run.output_dir) if run.output_dir else encoder_cache_dir(encoder, data, run)
    job = TrainingRun(
        RUN_NAME,
        run,
        output_dir,
        identity(encoder, data, run, exclude=UNUSED_BY_TRAINING),
        push=push,
        default_train_batch_size=PRETRAIN_TRAIN_BATCH_SIZE,
    )
    accelerator = job.accelerator
    final = job.model_dir
    if job.start() == "complete":
        logger.info("encoder already pre-trained: %s", final)
        job.push()
        return final
    from accelerate.utils import set_seed

    set_seed(run.seed)
    datasets = load_data(data)
    check_splits(datasets)
    train = datasets["train"].select_columns(["image"])
    validation = datasets["validation"].select_columns(["image"])
    if data.max_train_samples:
        train = train.select(range(min(len(train), data.max_train_samples)))
    if data.max_eval_samples:
        validation = validation.select(range(min(len(validation), data.max_eval_samples)))
    height, width = train[0]["image"].shape[-2:]
    if height != width:
        raise DataError(f"pre-training expects square images, got {height}x{width}")
    model = MaskedImageModeling(Dinov2Model(encoder_config(encoder, int(height))), norm_pix_loss=encoder.norm_pix_loss)
    status = job.status
    job.claim()
    if status == "new" and accelerator.is_main_process:
        atomic_write_json(output_dir / REVISION_NAME, source_revision(), indent=1)
    stage = Stage(
        "mim",
        trainable=[""],
        learning_rate=encoder.learning_rate,
        num_epochs=encoder.num_train_epochs,
        early_stopping_patience=encoder.early_stopping_patience,
        restore_best=encoder.early_stopping_patience is not None,
        **run.stage_defaults(),
    )
    init_tracking(accelerator, "pretrain_encoder", as_dict(encoder, data, run))
    masks = dict(
        image_size=int(height),
        patch_size=encoder.patch_size,
        mask_ratio=encoder.mask_ratio,
        mask_patch_size=encoder.mask_patch_size,
    )
    result = fit(
        accelerator,
        model,
        [stage],
        train,
        validation,
        mim_loss,
        job.trainer_config(),
        train_transform=make_mask_transform(**masks, augment=data.augment),
        eval_transform=make_mask_transform(**masks, augment=False),
    )
    finish_tracking(accelerator)
    if accelerator.is_main_process:
        write_loss_curve(output_dir)
    if result.interrupted:
        logger.info("stopped after %d steps; run again to resume (%s)", result.state.global_step, output_dir)
        return final
    trained: MaskedImageModeling = result.model
    summary = {
        "recipe": "pretrain_encoder",
        "model": str(final),
        "parameters": sum(p.numel() for p in trained.dinov2.parameters()),
        "train_seconds": result.train_seconds,
        "num_processes": accelerator.num_processes,
        "global_step": result.state.global_step,
        "source_revision": read_revision(output_dir),
        "history": result.history,
    }
    job.finish(lambda tmp: trained.dinov2.save_pretrained(tmp), summary)
    logger.info("saved the pre-trained encoder to %s", final)
    job.push()
    return final


def read_revision(output_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The git commit the run started from (written when the run was claimed)."""
    path = Path(output_dir) / REVISION_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def loss_curve(output_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The run's loss curve from its JSONL tracker: one record per logged training step (``train_loss``, ``lr``)
    and per evaluation (``eval_loss``, ``epoch``), by step. Steps redone after a resume keep their last record."""
    path = Path(output_dir) / "logs" / RUN_NAME / "metrics.jsonl"
    if not path.is_file():
        return []
    records: dict[tuple[str, int], dict[str, Any]] = {}
    for entry in read_jsonl(path):
        step = entry.get("step")
        if step is None:
            continue
        if "mim/eval_loss" in entry:
            records[("eval", step)] = {
                "step": step,
                "epoch": entry.get("mim/epoch"),
                "eval_loss": entry["mim/eval_loss"],
            }
        elif "mim/train_loss" in entry:
            records[("train", step)] = {"step": step, "train_loss": entry["mim/train_loss"], "lr": entry.get("mim/lr")}
    return [records[key] for key in sorted(records, key=lambda k: (k[1], k[0] == "eval"))]


def write_loss_curve(output_dir: str | os.PathLike, destination: str | os.PathLike | None = None) -> list[Path]:
    """`loss_curve.jsonl` + `loss_curve.png` of the run in `output_dir`, written to `destination` (default: the same
    folder); nothing when nothing was logged."""
    from ..analysis.plots import plot_loss_curve

    records = loss_curve(output_dir)
    if not records:
        return []
    target = Path(destination or output_dir)
    target.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target / LOSS_CURVE_NAME, "".join(json.dumps(r) + "\n" for r in records))
    return [target / LOSS_CURVE_NAME, *plot_loss_curve(records, target / "loss_curve", title="SimMIM pre-training")]


def default_encoder(data: DataArguments, run: RunArguments, config_file: str | os.PathLike | None = None) -> Path:
    """The embedded small encoder for `data`, pre-trained on first use and cached (keyed by its arguments).

    `config_file`: a YAML file of `EncoderArguments` fields overriding the defaults.
    """
    encoder = EncoderArguments()
    if config_file is not None:
        encoder = dataclass_from_yaml(EncoderArguments, config_file)
    # every run setting reaches the pre-training but what is the outer run's: its folder (the cache's here), its
    # upload and its stopping point (the encoder is finished before the outer run starts)
    pretrain_run = dataclasses.replace(
        run, output_dir=None, overwrite_output_dir=False, push_to_hub=False, stop_after_steps=None
    )
    return pretrain_encoder(encoder, dataclasses.replace(data), pretrain_run)


__all__ = [
    "MaskedImageModeling",
    "default_encoder",
    "encoder_cache_dir",
    "encoder_config",
    "loss_curve",
    "make_mask_transform",
    "mim_loss",
    "pretrain_encoder",
    "read_revision",
    "write_loss_curve",
]
