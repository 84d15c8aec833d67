"""`DemoArguments`: the settings of `hf-simo demo` (the whole pipeline on the embedded benchmark). Plain dataclass,
no torch: `hf-simo demo --help` stays cheap.

The demo runs the recipes' jobs with its own settings; `DEMO_FORWARDS` says which recipe option each demo option
becomes (a stage-specific copy is named ``<recipe>_<short>`` where the bare name would be ambiguous, issue 11's
rule), and `RENAMED` the demo's old spellings (refused with the new name). Progress bars: ``--disable_tqdm``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..data.specs import BENCHMARK_PRESETS
from ..errors import OptionError
from ..utils.fields import json_mapping, option, require_positive


# the embedded presets' heads: linear for the NYUv2-like benchmark, DPT for the Taskonomy-like one (the paper's
# Table 3 heads), with Depth Anything Small's fusion width (64) for these small encoders
PRESET_HEADS = {"nyuv2": "linear", "taskonomy": "dpt"}
DPT_HEAD_OPTIONS = '{"fusion_hidden_size": 64}'


@dataclass
class DemoArguments:
    """The demo's settings; the defaults finish in under 15 minutes on 2 CPU cores from scratch."""

    output_dir: str = option("hf_simo_demo", "Where every model, table, plot and card is written.")
    dataset: str = option(
        "nyuv2",
        "Embedded benchmark preset: nyuv2 (3 tasks, linear heads; about 15 minutes on 2 cores) or taskonomy "
        "(reconstruction, depth, normals, keypoints, edges with DPT heads: the analogue of Table 3 and Figure 1; "
        "over an hour on 2 cores, see benchmarks/RESULTS.md).",
    )
    model_name_or_path: str | None = option(
        None, "DINOv2 encoder to fine-tune (θ_0), a Hub id or folder. Default: the encoder shipped with hf_simo."
    )
    pretrain_encoder: bool = option(
        False,
        "Pre-train a small encoder on the benchmark's training images first (SimMIM, 1.5-2.5 minutes more; the "
        "demo's behaviour before an encoder shipped with the package) instead of using the shipped one.",
    )
    image_size: int = option(64, "Image side in pixels.")
    train_samples: int = option(2000, "Training samples (single-task and MTL training).")
    validation_samples: int = option(200, "Validation samples: α search and re-alignment see only these.")
    test_samples: int = option(500, "Test samples: every reported number.")
    stage1_epochs: int = option(2, "Head probing (stage 1) epochs of single-task and MTL training.")
    finetune_epochs: int = option(
        3,
        "Single-task stage-2 epochs (early-stopped). The short default fits the 15-minute budget; it stops before "
        "the validation loss plateaus (benchmarks/realign_results.py --converged trains as the paper does).",
    )
    mtl_epochs: int | None = option(
        None, "MTL stage-2 epochs. Default: the single-task runs' together (--finetune_epochs × number of tasks)."
    )
    head: str | None = option(
        None, "Head of every task: linear or dpt. Default: the preset's (nyuv2: linear; taskonomy: dpt)."
    )
    head_options: str | None = option(
        None, f"Head options as JSON, as the recipes take them. Default for dpt heads: {DPT_HEAD_OPTIONS}."
    )
    stage2_patience: int = option(3, "Early-stopping patience (epochs) of stage 2 (single-task and MTL).")
    merge_methods: list[str] = option(["task_arithmetic", "ties"], "Merging methods.")
    ties_density: float = option(0.2, "TIES: fraction of each task vector kept.")
    alpha_grid: list[float] = option([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0], "α values searched on validation.")
    realign_epochs: int = option(30, "Representation re-alignment: maximum epochs.")
    realign_learning_rate: float = option(1e-3, "Representation re-alignment learning rate.")
    head_epochs: int = option(50, "Head re-alignment: maximum epochs.")
    rank: int = option(16, "Adapter rank.")
    relationship_lambdas: list[float] = option([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5], "λ grid of the sweeps.")
    coefficient_steps: int = option(60, "Steps of per-layer coefficient learning (Figure 2).")
    qualitative_samples: int = option(4, "Test images in the qualitative grid.")
    seed: int = option(0, "Seed of everything.")
    num_threads: int | None = option(None, "Torch CPU threads (default: all cores).")

    def __post_init__(self) -> None:
        if self.dataset not in BENCHMARK_PRESETS:
            raise OptionError(
                f"--dataset must be an embedded benchmark preset ({', '.join(BENCHMARK_PRESETS)}), got "
                f"{self.dataset!r}; the recipes (recipes/finetune.py, recipes/realign.py) read the real datasets"
            )
        if self.head is None:
            self.head = PRESET_HEADS[self.dataset]
        if self.head not in ("linear", "dpt"):
            raise OptionError(f"--head must be linear or dpt, got {self.head!r}")
        if self.head_options is None and self.head == "dpt":
            self.head_options = DPT_HEAD_OPTIONS
        json_mapping(self.head_options, "--head_options")  # bad JSON fails here, before any data or training
        if self.mtl_epochs is None and isinstance(self.finetune_epochs, int):
            self.mtl_epochs = self.finetune_epochs * len(BENCHMARK_PRESETS[self.dataset])
        require_positive(
            self,
            "image_size",
            "train_samples",
            "validation_samples",
            "test_samples",
            "stage1_epochs",
            "finetune_epochs",
            "mtl_epochs",
            "stage2_patience",
            "realign_epochs",
            "head_epochs",
            "rank",
            "coefficient_steps",
            "qualitative_samples",
        )
        require_positive(self, "num_threads", optional=True)
        require_positive(self, "realign_learning_rate", integer=False)


# demo option -> the recipe options it becomes ("Dataclass.field"; the demo's own stages have none)
DEMO_FORWARDS: dict[str, tuple[str, ...]] = {
    "dataset": ("DataArguments.dataset",),
    "image_size": ("DataArguments.image_size",),
    "train_samples": ("DataArguments.train_samples",),
    "validation_samples": ("DataArguments.validation_samples",),
    "test_samples": (),  # the demo's own test split (not part of the training runs' identity)
    "model_name_or_path": ("FinetuneArguments.model_name_or_path", "MTLArguments.model_name_or_path"),
    "pretrain_encoder": ("FinetuneArguments.pretrain_encoder", "MTLArguments.pretrain_encoder"),
    "stage1_epochs": ("FinetuneArguments.stage1_epochs", "MTLArguments.stage1_epochs"),
    "finetune_epochs": ("FinetuneArguments.stage2_epochs",),
    "mtl_epochs": ("MTLArguments.stage2_epochs",),
    "head": ("FinetuneArguments.head", "MTLArguments.head"),
    "head_options": ("FinetuneArguments.head_options", "MTLArguments.head_options"),
    "stage2_patience": ("FinetuneArguments.stage2_patience", "MTLArguments.stage2_patience"),
    "realign_epochs": ("RealignmentSettings.num_epochs",),
    "realign_learning_rate": ("RealignmentSettings.learning_rate",),
    "head_epochs": ("RealignmentSettings.head_epochs",),
    "rank": ("RealignmentSettings.rank",),
    "relationship_lambdas": ("RelationshipsArguments.lambdas",),
    "seed": ("RunArguments.seed", "DataArguments.data_seed", "RealignmentSettings.seed"),
    "num_threads": ("RunArguments.num_threads",),
}


def forwarded(args: DemoArguments, target: str) -> dict[str, Any]:
    """The fields of the recipe dataclass named `target` that the demo's `args` set, as `DEMO_FORWARDS` says
    (``forwarded(args, "MTLArguments")`` -> ``{"stage2_epochs": args.mtl_epochs, ...}``)."""
    out = {}
    for name, targets in DEMO_FORWARDS.items():
        for destination in targets:
            owner, _, field = destination.partition(".")
            if owner == target:
                out[field] = getattr(args, name)
    return out


# old spelling -> the new option (refused with exit 2 naming it, issue 11 decision 7.2)
RENAMED = {
    "patience": "--stage2_patience",
    "methods": "--merge_methods",
    "disable_progress_bar": "--disable_tqdm",
}


__all__ = ["DEMO_FORWARDS", "DPT_HEAD_OPTIONS", "DemoArguments", "PRESET_HEADS", "RENAMED", "forwarded"]
