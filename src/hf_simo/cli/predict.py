"""`hf-simo predict MODEL IMAGE... --output_dir DIR`: predict every task for image files, one PNG per image and task
and a grid (`hf_simo.predict.predict_to_folder`).

    hf-simo predict org/nyuv2-ta-realigned room1.jpg room2.jpg --output_dir predictions

Options: `PredictArguments` (below), `hf_simo.hub.HubOptions` (how a Hub model is read) and the common options.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..hub import HubOptions
from ..utils.fields import option, require_positive
from .runner import EXIT_OK, Command


@dataclass
class PredictArguments:
    """The model, the images, where the PNGs go, and how the model runs."""

    model_name_or_path: str = option(help="SimoModel folder or Hub repo id (positional: MODEL).")
    images: list[str] = option(help="Image files (positional: IMAGE...).")
    output_dir: str = option(help="Where the PNGs go (<image>.<task>.png, <image>.grid.png).")
    tasks: list[str] | None = option(None, "Predict only these tasks (default: all).")
    model_revision: str | None = option(None, "Branch, tag or commit of a Hub MODEL.")
    device: str | None = option(None, "cpu, cuda, cuda:1, ... (default: cuda when available).")
    per_device_eval_batch_size: int = option(4, "Images per forward pass.")

    def __post_init__(self) -> None:
        require_positive(self, "per_device_eval_batch_size")


RENAMED = {
    "revision": "--model_revision",
    "batch_size": "--per_device_eval_batch_size",
    "no_progress": "--disable_tqdm",
}


def run(predict: PredictArguments, hub: HubOptions) -> int:
    from ..predict import predict_to_folder

    written = predict_to_folder(
        predict.model_name_or_path,
        predict.images,
        predict.output_dir,
        tasks=predict.tasks,
        revision=predict.model_revision,
        device=predict.device,
        batch_size=predict.per_device_eval_batch_size,
        hub=hub,
    )
    print(f"wrote {len(written)} file(s) for {len(predict.images)} image(s) to {predict.output_dir}")
    return EXIT_OK


COMMAND = Command(
    "hf-simo predict",
    (PredictArguments, HubOptions),
    run,
    positional={"model_name_or_path": "MODEL", "images": "IMAGE"},
    renamed=RENAMED,
    description="Predict every task for image files: one PNG per image and task, and a grid.",
)
main = COMMAND.main

__all__ = ["COMMAND", "PredictArguments", "RENAMED", "main", "run"]
