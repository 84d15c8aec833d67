"""Experiment trackers of the training runs: `--report_to jsonl` (this package's file tracker, `JSONLTracker`),
`tensorboard`, other Accelerate trackers, `all` or `none`; started once per run, closed without ending the process
group."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker

from ..atomic import atomic_write_json
from ..errors import OptionError
from ..utils.logging import get_logger


logger = get_logger(__name__)


class JSONLTracker(GeneralTracker):
    """An Accelerate tracker that appends one JSON object per `log` call to `<logging_dir>/<run_name>/metrics.jsonl`.

    Needs nothing installed, is easy to read back (`read_jsonl`) and survives resumes (it appends).
    """

    name = "jsonl"
    requires_logging_directory = True
    main_process_only = True

    def __init__(self, run_name: str, logging_dir: str | os.PathLike):
        super().__init__()
        self.run_name = run_name
        self.directory = Path(logging_dir) / run_name
        self.path = self.directory / "metrics.jsonl"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def tracker(self) -> Path:
        return self.path

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        atomic_write_json(self.directory / "config.json", values, indent=1, sort_keys=True, default=str)

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        record = {"step": step, "time": time.time(), **values}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, default=_json_default) + "\n")

    def finish(self) -> None:
        pass


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return str(value)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records a `JSONLTracker` wrote."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def resolve_trackers(report_to: str | Sequence[str] | None, logging_dir: str | os.PathLike, run_name: str) -> list:
    """`"jsonl"`, `"tensorboard"`, `"all"`, other Accelerate tracker names, comma-separated, or `"none"`.

    `"jsonl"` is this package's file tracker. A tracker whose library is not installed is skipped with a warning
    (TensorBoard is optional), so a config that asks for it still runs.
    """
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, get_available_trackers

    if report_to is None:
        return []
    names = [n.strip() for n in (report_to.split(",") if isinstance(report_to, str) else report_to) if n.strip()]
    if not names or names == ["none"]:
        return []
    available = {str(t) for t in get_available_trackers()}
    trackers: list = []
    for name in names:
        if name == "none":
            continue
        if name == "jsonl":
            trackers.append(JSONLTracker(run_name, logging_dir))
        elif name == "all":
            trackers.append(JSONLTracker(run_name, logging_dir))
            trackers.extend(sorted(available))
        elif name in LOGGER_TYPE_TO_CLASS:
            if name in available:
                trackers.append(name)
            else:
                logger.warning("tracker %r is not installed; skipping it (pip install %s)", name, name)
        else:
            raise OptionError(
                f"--report_to: unknown tracker {name!r}; use jsonl, none, all or one of {sorted(LOGGER_TYPE_TO_CLASS)}"
            )
    unique: list = []
    for tracker in trackers:
        if tracker not in unique and not (isinstance(tracker, str) and tracker in unique):
            unique.append(tracker)
    return unique


def init_tracking(accelerator: Accelerator, project_name: str, config: dict[str, Any]) -> None:
    """`accelerator.init_trackers` with a config reduced to the scalar types every tracker accepts."""
    if not accelerator.log_with or tracking_started(accelerator):
        return
    flat = {
        k: (v if isinstance(v, (bool, int, float, str)) or v is None else json.dumps(v, default=str))
        for k, v in config.items()
    }
    accelerator.init_trackers(project_name, config=flat)
    accelerator._hf_simo_tracking = True


def tracking_started(accelerator: Accelerator) -> bool:
    return bool(getattr(accelerator, "_hf_simo_tracking", False))


def finish_tracking(accelerator: Accelerator) -> None:
    """Close the trackers (without destroying the process group, unlike `end_training`)."""
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.trackers = []
    accelerator._hf_simo_tracking = False


__all__ = ["JSONLTracker", "finish_tracking", "init_tracking", "read_jsonl", "resolve_trackers", "tracking_started"]
