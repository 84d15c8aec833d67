"""`DataArguments`: which dataset a verb or recipe reads, and how much of it (the options every data-reading command
shares; `hf_simo.data.loading.load_data` takes them). Plain dataclass, no torch: `--help` stays cheap."""

from __future__ import annotations

from dataclasses import dataclass

from ..utils.fields import option, require_positive


@dataclass
class DataArguments:
    """Which dataset, and how much of it."""

    dataset: str = option(
        "nyuv2",
        "Embedded benchmark preset (nyuv2, taskonomy), a real dataset (nyuv2_real, cityscapes, taskonomy_real; needs "
        "--dataset_path), a folder saved with DatasetDict.save_to_disk by hf_simo.data, or pretraining (images "
        "only: the embedded benchmark's larger, more varied encoder pre-training set).",
    )
    dataset_path: str | None = option(None, "Root folder of a real dataset.")
    image_size: int = option(64, "Image side of the embedded benchmark, in pixels.")
    train_samples: int = option(2000, "Training samples of the embedded benchmark.")
    validation_samples: int = option(200, "Validation samples of the embedded benchmark.")
    test_samples: int = option(500, "Test samples of the embedded benchmark (real datasets use their test split).")
    data_seed: int = option(0, "Seed of the embedded benchmark (and of real datasets' validation/test carving).")
    max_train_samples: int | None = option(None, "Use only the first N training samples (quick runs).")
    max_eval_samples: int | None = option(None, "Use only the first N validation samples (quick runs).")
    augment: bool = option(True, "Random scale-crop augmentation (batched, on the device).")
    dataset_cache_dir: str | None = option(None, "Where the embedded benchmark is cached (default $HF_HOME/hf_simo).")

    def __post_init__(self) -> None:
        require_positive(self, "image_size", "train_samples", "validation_samples", "test_samples")
        require_positive(self, "max_train_samples", "max_eval_samples", optional=True)


__all__ = ["DataArguments"]
