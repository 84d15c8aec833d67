"""`hf-simo evaluate MODEL`: metrics of a SimoModel on a dataset split (`hf_simo.evaluation.evaluate_dataset`).

    hf-simo evaluate org/nyuv2-ta-realigned --dataset nyuv2 --split test --output_file metrics.json
    hf-simo evaluate depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf --task depth --dataset nyuv2

MODEL may also be a transformers checkpoint hf_simo imports (DPT-DINOv2, Depth Anything; `hf_simo.interop`):
`--task NAME` names the task it becomes, which is also the dataset column it is scored on.

Options: `EvaluateArguments` (below), `hf_simo.data.DataArguments` (which dataset, how large its splits are),
`hf_simo.hub.HubOptions` (how a Hub model is read) and the common ``--log_level``/``--disable_tqdm``/``--debug``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..data.arguments import DataArguments
from ..hub import HubOptions
from ..utils.fields import option, require_positive
from .runner import EXIT_OK, Command


@dataclass
class EvaluateArguments:
    """The model evaluated, which split, and where the metrics go."""

    model_name_or_path: str = option(
        help="SimoModel, or transformers DPT-DINOv2 / Depth Anything model (with --task): folder or Hub repo id "
        "(positional: MODEL)."
    )
    model_revision: str | None = option(None, "Branch, tag or commit of a Hub MODEL.")
    tasks: list[str] | None = option(None, "Evaluate only these tasks of a SimoModel (default: every task).")
    task: str | None = option(
        None,
        "The task a transformers MODEL (DPT-DINOv2, Depth Anything) is imported as, and the dataset column it is "
        "scored on; required for such a MODEL (a SimoModel names its own tasks: --tasks).",
    )
    split: str = option("test", "Dataset split to evaluate (test, validation, ...).")
    per_device_eval_batch_size: int = option(64, "Evaluation batch size.")
    output_file: str | None = option(None, "Also write the metrics as JSON to this file (hf-simo card --results).")

    def __post_init__(self) -> None:
        require_positive(self, "per_device_eval_batch_size")


NOT_APPLICABLE = {
    "train_samples": "it builds no training split",
    "max_train_samples": "it builds no training split",
    "max_eval_samples": "it evaluates the whole split; size the embedded benchmark with --test_samples",
    "augment": "evaluation never augments",
}
RENAMED = {
    "revision": "--model_revision",
    "batch_size": "--per_device_eval_batch_size",
    "samples": "size the embedded benchmark's splits with --test_samples / --validation_samples",
    "output": "--output_file",
}


def run(evaluate: EvaluateArguments, data: DataArguments, hub: HubOptions) -> int:
    from ..atomic import atomic_write_json
    from ..data import load_data
    from ..errors import DataError
    from ..evaluation import evaluate_dataset
    from ..metrics import format_metric
    from ..modeling_simo import SimoModel

    model = SimoModel.from_pretrained(  # a transformers checkpoint is imported as the task --task names
        evaluate.model_name_or_path,
        revision=evaluate.model_revision,
        tasks=evaluate.tasks,
        task=evaluate.task,
        **hub.model_kwargs(),
    ).eval()
    loaded = load_data(data, test_samples=data.test_samples, train=False)
    if evaluate.split not in loaded:
        raise DataError(f"split {evaluate.split!r} not in the dataset; it has {list(loaded)} (--split)")
    results = evaluate_dataset(model, loaded[evaluate.split], batch_size=evaluate.per_device_eval_batch_size)
    lines = ["| task | metric | value |", "|---|---|--:|"]
    for task, metrics in results.items():
        for name, value in metrics.items():
            lines.append(f"| {task} | {name} | {format_metric(name, value)} |")
    print("\n".join(lines))
    if evaluate.output_file:
        record = {
            "model": evaluate.model_name_or_path,
            "revision": evaluate.model_revision,
            "dataset": data.dataset,
            "split": evaluate.split,
            "results": results,
        }
        atomic_write_json(evaluate.output_file, record, indent=2, default=str)
        print(f"wrote {evaluate.output_file}")
    return EXIT_OK


COMMAND = Command(
    "hf-simo evaluate",
    (EvaluateArguments, DataArguments, HubOptions),
    run,
    positional={"model_name_or_path": "MODEL"},
    not_applicable=NOT_APPLICABLE,
    renamed=RENAMED,
    description="Metrics of a SimoModel on a dataset split.",
)
main = COMMAND.main

__all__ = ["COMMAND", "EvaluateArguments", "NOT_APPLICABLE", "RENAMED", "main", "run"]
