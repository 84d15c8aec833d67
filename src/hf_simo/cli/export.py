"""`hf-simo export MODEL --task depth --output_dir DIR`: one task of a SimoModel as its transformers class
(`DepthAnythingForDepthEstimation`, `DPTForDepthEstimation`) with the model's (merged) encoder, runnable in
`transformers.pipeline("depth-estimation")` without hf_simo (`hf_simo.interop.export_task`). The processor written
is the imported source's `preprocessor_config.json` when the task was imported, else the one saved with MODEL, else
one made for its encoder.

Options: `ExportArguments` (below), `hf_simo.hub.HubOptions` (how a Hub model is read) and the common
``--log_level``/``--disable_tqdm``/``--debug``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..hub import HubOptions
from ..utils.fields import option
from .runner import EXIT_OK, Command


@dataclass
class ExportArguments:
    """The model, the task exported and where it goes."""

    model_name_or_path: str = option(help="SimoModel folder or Hub repo id (positional: MODEL).")
    task: str = option(help="The task to export (a depth_anything head, or a dpt head of a depth/disparity task).")
    output_dir: str = option(help="Folder the transformers checkpoint is written to (atomically).")
    model_revision: str | None = option(None, "Branch, tag or commit of a Hub MODEL.")
    overwrite_output_dir: bool = option(False, "Replace an existing output folder.")


def run(export: ExportArguments, hub: HubOptions) -> int:
    from ..interop.export import export_task, source_preprocessor
    from ..modeling_simo import SimoModel

    model = SimoModel.from_pretrained(
        export.model_name_or_path,
        revision=export.model_revision,
        **hub.model_kwargs(),
    ).eval()
    processor = None
    if source_preprocessor(model.config, export.task) is None:  # else the imported source's, as it was
        processor = saved_image_processor(model, export.model_name_or_path, export.model_revision, hub)
    path = export_task(
        model, export.task, export.output_dir, image_processor=processor, overwrite=export.overwrite_output_dir
    )
    print(f"wrote {path} ({export.task!r} as {model.config.tasks[export.task]['head']} -> transformers)")
    return EXIT_OK


def saved_image_processor(model, name: str, revision: str | None, hub: HubOptions):
    """The image processor saved with MODEL (what its heads were trained or re-aligned with); None without one
    (`export_task` then makes one for the model's encoder)."""
    from transformers import AutoImageProcessor

    from ..hub import split_revision

    inline, inline_revision = split_revision(name)
    try:
        return AutoImageProcessor.from_pretrained(
            getattr(model.config, "name_or_path", None) or inline,
            revision=revision or inline_revision,
            **hub.download_kwargs(),
        )
    except (OSError, ValueError):  # a folder without preprocessor_config.json
        return None


COMMAND = Command(
    "hf-simo export",
    (ExportArguments, HubOptions),
    run,
    positional={"model_name_or_path": "MODEL"},
    description="Export one task of a SimoModel to its transformers class (depth-estimation pipeline).",
)
main = COMMAND.main

__all__ = ["COMMAND", "ExportArguments", "main", "run", "saved_image_processor"]
