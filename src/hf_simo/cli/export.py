"""`hf-simo export MODEL --task depth --output_dir DIR`: one task of a SimoModel as its transformers class
(`DepthAnythingForDepthEstimation`, `DPTForDepthEstimation`) with the model's (merged) encoder, runnable in
`transformers.pipeline("depth-estimation")` without hf_simo (`hf_simo.interop.export_task`).

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
    from ..interop.export import export_task
    from ..modeling_simo import SimoModel

    model = SimoModel.from_pretrained(
        export.model_name_or_path,
        revision=export.model_revision,
        **hub.model_kwargs(),
    ).eval()
    path = export_task(model, export.task, export.output_dir, overwrite=export.overwrite_output_dir)
    print(f"wrote {path} ({export.task!r} as {model.config.tasks[export.task]['head']} -> transformers)")
    return EXIT_OK


COMMAND = Command(
    "hf-simo export",
    (ExportArguments, HubOptions),
    run,
    positional={"model_name_or_path": "MODEL"},
    description="Export one task of a SimoModel to its transformers class (depth-estimation pipeline).",
)
main = COMMAND.main

__all__ = ["COMMAND", "ExportArguments", "main", "run"]
