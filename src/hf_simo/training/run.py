"""Output folders of training runs: one run per folder, resumable, with an atomically written final model.

Layout of ``output_dir``::

    run_args.json          what the run computes (compared on every start)
    checkpoints/           Accelerate states + trainer_state.json (removed after success unless kept)
    best/                  best weights per stage, for early stopping (removed with the checkpoints)
    logs/                  trackers (metrics.jsonl)
    model/                 the final model, written beside and swapped in (`hf_simo.atomic`): it exists only complete
    training_summary.json  timings, history, final validation metrics, encoder drift

A folder whose ``run_args.json`` differs from the new run's is a `RunConflictError` unless ``overwrite`` is set (then
the run starts over); the same run resumes from its newest checkpoint, or does nothing when ``model/`` is already
there. The folder is claimed (``run_args.json`` written) only after the inputs were checked, so a run rejected for
bad input leaves it untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from ..atomic import atomic_folder, atomic_write_json
from ..errors import OptionError, RunConflictError
from ..hub import HubOptions, PushOptions
from ..utils.logging import get_logger


logger = get_logger(__name__)


RUN_ARGS_NAME = "run_args.json"
MODEL_DIR = "model"
SUMMARY_NAME = "training_summary.json"
_OWNED = (RUN_ARGS_NAME, "checkpoints", "best", "logs", MODEL_DIR, SUMMARY_NAME)


def _normalise(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k, '<unset>')!r} -> {new.get(k, '<unset>')!r}" for k in keys if old.get(k) != new.get(k)]


def model_dir(output_dir: str | os.PathLike) -> Path:
    """Where a run's final model lives."""
    return Path(output_dir) / MODEL_DIR


def is_complete(output_dir: str | os.PathLike) -> bool:
    folder = model_dir(output_dir)
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def check_output_dir(
    accelerator: Accelerator, output_dir: str | os.PathLike, run_args: dict[str, Any], overwrite: bool = False
) -> str:
    """What `output_dir` holds for this run: "new", "resume" or "complete"; nothing is written.

    A folder holding a different run (or training outputs without `run_args.json`) is a `RunConflictError` unless
    `overwrite`, in which case the run starts over ("new"). Every process reads before anyone writes.
    """
    folder = Path(output_dir)
    run_args = _normalise(run_args)
    existing_path = folder / RUN_ARGS_NAME
    existing = json.loads(existing_path.read_text()) if existing_path.is_file() else None
    foreign = folder.is_dir() and existing is None and any(p.name in _OWNED for p in folder.iterdir())
    accelerator.wait_for_everyone()
    if overwrite:
        return "new"
    if foreign or (existing is not None and existing != run_args):
        if foreign:
            detail = "it has training outputs but no run_args.json"
        else:
            changes = _differences(existing, run_args)
            detail = "; ".join(changes[:6]) + (" ..." if len(changes) > 6 else "")
        raise RunConflictError(
            f"output folder {folder} holds a different run ({detail}); pass --overwrite_output_dir to replace it or "
            "choose another --output_dir"
        )
    if existing is None:
        return "new"
    return "complete" if is_complete(folder) else "resume"


def claim_output_dir(
    accelerator: Accelerator,
    output_dir: str | os.PathLike,
    run_args: dict[str, Any],
    status: str,
    keep: Sequence[str] = (),
) -> None:
    """Write `run_args.json` for a new run, removing a previous run's outputs first (after `check_output_dir`).

    Called once everything that can fail on bad input (encoder, dataset, tasks) has been checked, so a rejected
    run leaves the folder as it was. `keep`: outputs left in place until the new run replaces them (atomically).
    """
    folder = Path(output_dir)
    if accelerator.is_main_process and status == "new":
        if folder.is_dir():
            for name in _OWNED:
                if name in keep:
                    continue
                path = folder / name
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        atomic_write_json(folder / RUN_ARGS_NAME, _normalise(run_args), indent=1, sort_keys=True)
    accelerator.wait_for_everyone()


def save_atomically(accelerator: Accelerator, target: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Main process: `write(tmp_folder)` beside `target`, then swap it in (`hf_simo.atomic.atomic_folder`, replacing an
    older one); all processes wait.

    A crash leaves the previous `target` (or none) or the new complete one, never a half-written folder that loads;
    the next save cleans what a killed one left.
    """
    target = Path(target)
    if accelerator.is_main_process:
        with atomic_folder(target, overwrite=True) as tmp:
            write(tmp)
    accelerator.wait_for_everyone()
    return target


def push_from_main_process(
    accelerator: Accelerator,
    folder: Path,
    repo_id: str | None,
    private: bool = False,
    *,
    push: PushOptions | None = None,
    hub: HubOptions | None = None,
):
    """Publish `folder` (`hf_simo.publishing.push_folder_to_hub`) to `repo_id` (default `push.hub_model_id`) from the
    main process; every process then meets at a barrier before a failure is raised, so the others never wait forever.
    Returns the `PushResult` (or None)."""
    from ..publishing import push_folder_to_hub

    push = push or PushOptions()
    repo_id = repo_id or push.hub_model_id
    result, error = None, None
    if repo_id and accelerator.is_main_process:
        try:
            result = push_folder_to_hub(
                folder,
                repo_id,
                private=private or push.hub_private_repo,
                commit_message=push.commit_message,
                revision=push.hub_revision,
                create_pr=push.create_pr,
                token=(hub.token if hub is not None else None),
            )
            logger.info("pushed %s to %s", folder, result.url)
        except Exception as err:  # noqa: BLE001 - raised again after the barrier
            error = err
    accelerator.wait_for_everyone()
    if error is not None:
        raise error
    return result


def cleanup_checkpoints(accelerator: Accelerator, output_dir: str | os.PathLike) -> None:
    if accelerator.is_main_process:
        for name in ("checkpoints", "best"):
            shutil.rmtree(Path(output_dir) / name, ignore_errors=True)
    accelerator.wait_for_everyone()


def write_summary(accelerator: Accelerator, output_dir: str | os.PathLike, summary: dict[str, Any]) -> None:
    if accelerator.is_main_process:
        atomic_write_json(Path(output_dir) / SUMMARY_NAME, summary, indent=1, sort_keys=True, default=str)


class TrainingRun:
    """The lifecycle of one run in one output folder, shared by fine-tuning, pre-training and re-alignment.

    ``TrainingRun(recipe, run, output_dir, identity)`` sets the threads and builds the Accelerator from `run`
    (`make_accelerator`: launch settings win over defaults); `start()` checks the folder against `identity` plus the
    resolved launch settings ("new", "resume" or "complete"; another run's folder is a `RunConflictError`);
    `claim()` writes `run_args.json` once the inputs passed every check; `finish(write)` swaps the model in atomically,
    writes the summary and drops the checkpoints unless `--keep_checkpoints`; `push()` uploads from the main process.
    """

    def __init__(
        self,
        recipe: str,
        run: Any,
        output_dir: str | os.PathLike,
        identity: dict[str, Any],
        *,
        push: PushOptions | None = None,
        hub: HubOptions | None = None,
        default_train_batch_size: int = 16,
    ):
        from .accelerator import configure_threads, make_accelerator

        check_push_options(run, push)
        configure_threads(run.num_threads)
        self.recipe, self.run, self.push_options, self.hub = recipe, run, push or PushOptions(), hub
        self.output_dir = Path(output_dir)
        self.accelerator = make_accelerator(
            self.output_dir,
            mixed_precision=run.mixed_precision,
            gradient_accumulation_steps=run.gradient_accumulation_steps,
            seed=run.seed,
            report_to=run.report_to,
            run_name=recipe,
        )
        self.default_train_batch_size = default_train_batch_size
        # what run_args.json records: the resolved values, so a launch with other settings is another run
        self.identity = {
            "recipe": recipe,
            **identity,
            "mixed_precision": str(self.accelerator.mixed_precision),
            "gradient_accumulation_steps": int(self.accelerator.gradient_accumulation_steps),
            "per_device_train_batch_size": run.train_batch_size(default_train_batch_size),
        }
        self.status: str | None = None

    @property
    def model_dir(self) -> Path:
        return model_dir(self.output_dir)

    def trainer_config(self):
        """`TrainerConfig` of this run (`RunArguments.trainer_config`)."""
        return self.run.trainer_config(self.output_dir, default_train_batch_size=self.default_train_batch_size)

    def start(self) -> str:
        self.status = check_output_dir(self.accelerator, self.output_dir, self.identity, self.run.overwrite_output_dir)
        return self.status

    def claim(self, keep: Sequence[str] = ()) -> None:
        claim_output_dir(self.accelerator, self.output_dir, self.identity, self.status or "new", keep=keep)

    def finish(self, write: Callable[[Path], None], summary: dict[str, Any] | None = None) -> Path:
        final = save_atomically(self.accelerator, self.model_dir, write)
        if summary is not None:
            write_summary(self.accelerator, self.output_dir, summary)
        if not self.run.keep_checkpoints:
            cleanup_checkpoints(self.accelerator, self.output_dir)
        return final

    def push(self, folder: Path | None = None):
        if not self.run.push_to_hub:
            return None
        return push_from_main_process(
            self.accelerator, folder or self.model_dir, None, push=self.push_options, hub=self.hub
        )


def check_push_options(run: Any, push: PushOptions | None) -> None:
    """`--push_to_hub` needs `--hub_model_id`; push options without `--push_to_hub` would be dropped: refused."""
    push = push or PushOptions()
    if run.push_to_hub and not push.hub_model_id:
        raise OptionError("--push_to_hub needs --hub_model_id ORG/NAME (the Hub repo to upload to)")
    given = [f"--{name}" for name in ("hub_model_id", "hub_revision", "commit_message") if getattr(push, name)]
    given += [f"--{name}" for name in ("hub_private_repo", "create_pr") if getattr(push, name)]
    if given and not run.push_to_hub:
        raise OptionError(f"{', '.join(given)} configure an upload: add --push_to_hub, or drop them")


def source_revision() -> dict[str, Any] | None:
    """The git commit of the hf_simo source that runs (and whether its code, `src/` and `recipes/`, has uncommitted
    changes), for provenance; None when hf_simo is not running from a git checkout."""
    root = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":/src", ":/recipes"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"git_commit": commit, "dirty": bool(status.strip())}


def read_summary(output_dir: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(output_dir) / SUMMARY_NAME
    return json.loads(path.read_text()) if path.is_file() else None


__all__ = [
    "TrainingRun",
    "check_push_options",
    "MODEL_DIR",
    "RUN_ARGS_NAME",
    "RunConflictError",
    "SUMMARY_NAME",
    "cleanup_checkpoints",
    "is_complete",
    "check_output_dir",
    "claim_output_dir",
    "model_dir",
    "read_summary",
    "save_atomically",
    "source_revision",
    "write_summary",
]
