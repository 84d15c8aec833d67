"""The files of a training run's loop (the I/O half of `hf_simo.training.Trainer`): checkpoints and best weights.

Layout under ``output_dir``::

    checkpoints/checkpoint-000001/   accelerate.save_state (model, optimizer, scheduler, RNGs) + trainer_state.json
    best/stage0-<name>.safetensors   best weights of a stage (early stopping restores them)

Every process writes its part of a checkpoint into one staging folder (`hf_simo.atomic.staging_folder`), between
barriers; the main process adds ``trainer_state.json`` and commits it (`commit_folder`), so an interrupted save never
leaves a checkpoint that loads but is half-written. Best weights are one file written through `atomic_file`.
Temporaries a killed run left (hidden names beside their target) are removed before a run resumes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from accelerate import Accelerator
from torch import nn

from ..atomic import atomic_file, commit_folder, staging_folder
from ..errors import TrainingError


CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best"
TRAINER_STATE_NAME = "trainer_state.json"


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under `output_dir/checkpoints`, oldest first (temporary folders are ignored)."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("checkpoint-")]
    found = [p for p in found if (p / TRAINER_STATE_NAME).is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


class CheckpointStore:
    """Checkpoints and best weights of one run in `output_dir`; every method is called on every process."""

    def __init__(self, accelerator: Accelerator, output_dir: str | os.PathLike, total_limit: int | None = 2):
        self.accelerator = accelerator
        self.output_dir = Path(output_dir)
        self.root = self.output_dir / CHECKPOINTS_DIR
        self.total_limit = total_limit

    def latest(self) -> Path | None:
        return latest_checkpoint(self.output_dir)

    def clean_stale(self) -> None:
        """Main process: remove the temporaries of saves an interruption cut short (hidden names: staging folders,
        temporary files, and the ``.tmp-*`` folders of earlier versions)."""
        if not self.accelerator.is_main_process:
            return
        for folder in (self.root, self.output_dir / BEST_DIR):
            for stale in folder.glob(".*") if folder.is_dir() else ():
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink(missing_ok=True)

    def save(self, index: int, trainer_state_json: str) -> Path:
        """Checkpoint number `index`: every process saves its state, the main process commits the folder and prunes
        the oldest beyond `total_limit`."""
        acc = self.accelerator
        final = self.root / f"checkpoint-{index:06d}"
        staging = final.parent / f".{final.name}.save.partial"  # what staging_folder(final, "save") creates
        if acc.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = staging_folder(final, "save")
        acc.wait_for_everyone()
        acc.save_state(str(staging))
        acc.wait_for_everyone()
        if acc.is_main_process:
            (staging / TRAINER_STATE_NAME).write_text(trainer_state_json)  # inside the uncommitted folder
            commit_folder(staging, final, overwrite=True)  # a checkpoint without trainer_state.json is never used
            limit = self.total_limit
            if limit is not None and limit > 0:
                for old in list_checkpoints(self.output_dir)[:-limit]:
                    shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return final

    def best_path(self, stage_index: int, stage_name: str) -> Path:
        return self.output_dir / BEST_DIR / f"stage{stage_index}-{stage_name}.safetensors"

    def save_best(self, model: nn.Module, stage_index: int, stage_name: str) -> None:
        acc = self.accelerator
        state_dict = acc.get_state_dict(model)
        if acc.is_main_process:
            from safetensors.torch import save_file

            with atomic_file(self.best_path(stage_index, stage_name)) as temporary:
                save_file({k: v.detach().contiguous().cpu() for k, v in state_dict.items()}, str(temporary))
        acc.wait_for_everyone()

    def restore_best(self, model: nn.Module, stage_index: int, stage_name: str) -> None:
        from safetensors.torch import load_file

        path = self.best_path(stage_index, stage_name)
        if not path.is_file():
            raise TrainingError(f"the best weights of stage {stage_name!r} are missing ({path})")
        state_dict = load_file(str(path))  # on the CPU; load_state_dict copies onto each parameter's device
        self.accelerator.unwrap_model(model).load_state_dict(state_dict)


__all__ = [
    "BEST_DIR",
    "CHECKPOINTS_DIR",
    "TRAINER_STATE_NAME",
    "CheckpointStore",
    "latest_checkpoint",
    "list_checkpoints",
]
