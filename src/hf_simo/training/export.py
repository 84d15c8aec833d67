"""Turn a pre-training run into the encoder shipped with the package (`hf_simo.encoders`), with its provenance.

    python recipes/ship_encoder.py --run_dir outputs/pretrain-shipped

takes the run's final model (or, for a run stopped at a plateau before its schedule ended, its newest checkpoint),
and writes `config.json` + `model.safetensors` + `provenance.json` + `loss_curve.jsonl` + `loss_curve.png` into
`src/hf_simo/encoders/embedded/` (atomically: the old folder is replaced only once the new one is complete).
Weights are stored in float32 when they fit the size limit (10 MB), else in bfloat16 with `config.json` saying
float32, so every `from_pretrained` computes in float32 on the exact bfloat16 values (θ_0 is then the same tensor for
fine-tuning and for merging).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from transformers import Dinov2Model

from ..atomic import atomic_folder
from ..encoders import PROVENANCE_NAME, SHIPPED_ENCODER, shipped_encoder_path
from ..errors import TrainingError
from ..utils.logging import get_logger
from .arguments import ShipEncoderArguments
from .checkpoints import latest_checkpoint
from .pretrain import RUN_NAME, encoder_config, read_revision, write_loss_curve
from .run import RUN_ARGS_NAME, is_complete, model_dir, read_summary


logger = get_logger(__name__)


def _checkpoint_encoder(run_dir: Path, run_args: dict[str, Any]) -> tuple[Dinov2Model, dict[str, Any]]:
    """The encoder inside the newest Accelerate checkpoint (SimMIM wrapper: `dinov2.*` + `decoder.*`)."""
    from safetensors.torch import load_file

    from .arguments import EncoderArguments

    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise TrainingError(f"{run_dir} has neither a final model nor a checkpoint; run the pre-training first")
    weights = checkpoint / "model.safetensors"
    if not weights.is_file():
        raise TrainingError(f"checkpoint {checkpoint} has no model.safetensors")
    fields = {k: v for k, v in run_args.items() if k in EncoderArguments.__dataclass_fields__}
    model = Dinov2Model(encoder_config(EncoderArguments(**fields), int(run_args["image_size"])))
    state = {k.removeprefix("dinov2."): v for k, v in load_file(str(weights)).items() if k.startswith("dinov2.")}
    model.load_state_dict(state)
    trainer_state = json.loads((checkpoint / "trainer_state.json").read_text())
    return model, {"checkpoint": checkpoint.name, "global_step": trainer_state.get("global_step")}


def export_encoder(args: ShipEncoderArguments) -> Path:
    """Write the shipped-encoder folder from a pre-training run; returns it."""
    run_dir = Path(args.run_dir)
    run_args_path = run_dir / RUN_ARGS_NAME
    if not run_args_path.is_file():
        raise TrainingError(f"{run_dir} is not a pre-training run folder (no {RUN_ARGS_NAME})")
    run_args = json.loads(run_args_path.read_text())
    if run_args.get("recipe") != "pretrain_encoder":
        raise TrainingError(f"{run_dir} holds a {run_args.get('recipe')!r} run, not pretrain_encoder")
    summary = read_summary(run_dir) or {}
    if is_complete(run_dir) and not args.from_checkpoint:
        model = Dinov2Model.from_pretrained(model_dir(run_dir), dtype=torch.float32)
        stopped = {"state": "completed", "global_step": summary.get("global_step")}
    else:
        model, stopped = _checkpoint_encoder(run_dir, run_args)
        stopped["state"] = "stopped before the end of its schedule (newest checkpoint)"
    parameters = sum(p.numel() for p in model.parameters())
    dtype = torch.float32 if parameters * 4 <= args.max_megabytes * 1e6 else torch.bfloat16
    if parameters * (2 if dtype == torch.bfloat16 else 4) > args.max_megabytes * 1e6:
        raise TrainingError(
            f"the encoder has {parameters / 1e6:.2f}M parameters: more than {args.max_megabytes} MB even in "
            "bfloat16; pre-train a smaller one or raise --max_megabytes"
        )
    destination = Path(args.destination) if args.destination else shipped_encoder_path(SHIPPED_ENCODER, check=False)
    with atomic_folder(destination, overwrite=True) as tmp:  # the old encoder stays until the new one is complete
        _write_folder(tmp, model, dtype, run_dir, run_args, summary, stopped, parameters, args)
    size = (destination / "model.safetensors").stat().st_size / 1e6
    logger.info(f"shipped {parameters / 1e6:.2f}M-parameter encoder ({dtype}, {size:.1f} MB) to {destination}")
    return destination


def _write_folder(
    tmp: Path,
    model: Dinov2Model,
    dtype: torch.dtype,
    run_dir: Path,
    run_args: dict[str, Any],
    summary: dict[str, Any],
    stopped: dict[str, Any],
    parameters: int,
    args: ShipEncoderArguments,
) -> None:
    model.to(dtype).save_pretrained(str(tmp))
    if dtype != torch.float32:  # stored in bf16, computed in fp32 by every from_pretrained
        config_path = tmp / "config.json"
        config = json.loads(config_path.read_text())
        config["dtype"] = "float32"
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    launch = run_dir / "logs" / RUN_NAME / "config.json"
    history = summary.get("history") or []
    evals = [r["eval_loss"] for r in history if r.get("eval_loss") is not None]
    provenance = {
        "provisional": args.provisional,
        "note": args.note,
        "recipe": "recipes/pretrain_encoder.py",
        "arguments": run_args,
        "launch_arguments": json.loads(launch.read_text()) if launch.is_file() else None,
        "source_revision": read_revision(run_dir),
        "data": {k: run_args.get(k) for k in ("dataset", "data_seed", "train_samples", "validation_samples")},
        "budget": {
            **stopped,
            "train_seconds": summary.get("train_seconds"),
            "num_processes": summary.get("num_processes"),
        },
        "final_eval_loss": evals[-1] if evals else None,
        "best_eval_loss": min(evals) if evals else None,
        "parameters": parameters,
        "storage_dtype": str(dtype).removeprefix("torch."),
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (tmp / PROVENANCE_NAME).write_text(json.dumps(provenance, indent=1, sort_keys=True, default=str) + "\n")
    write_loss_curve(run_dir, tmp)
    for path in tmp.iterdir():
        os.chmod(path, 0o644)  # package data: world-readable, whatever umask the writer used


__all__ = ["ShipEncoderArguments", "export_encoder"]
