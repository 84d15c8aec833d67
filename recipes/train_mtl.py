"""The joint multi-task (MTL) baseline: one shared encoder, every task's head, unweighted mean of the task losses.

Trained in the same two stages as the single-task models (heads on the frozen encoder, then everything; the paper
trains its MTL baseline with the same "probing then full fine-tuning" recipe), with AdamW, one-cycle (5% warm-up),
clipping 25 and early stopping on the validation loss (the mean of the task losses). Output: a multi-task
`SimoModel` in `<output_dir>/model`.

Launch:

    accelerate launch recipes/train_mtl.py                                  # every task of the embedded benchmark
    accelerate launch recipes/train_mtl.py --tasks segmentation depth
    accelerate launch recipes/train_mtl.py recipes/configs/train_mtl.yaml
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 recipes/train_mtl.py

With no arguments: all tasks of the embedded `nyuv2` benchmark, the small encoder from `pretrain_encoder.py`
(cached), batch 16, stage 1: 2 epochs at lr 1e-2, stage 2: up to 9 epochs at lr 2e-3 (the three single-task runs'
stage-2 epochs together: MTL gets the same training compute as the models it is compared with), early stopping with
patience 3, output `outputs/mtl-nyuv2` (about 3 minutes on 2 CPU cores).
Arguments: `--help`.
"""

import os


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle OpenMP threads must not spin on few cores

from hf_simo.cli.train_mtl import main as run_command


def main(argv=None):
    """Parse arguments (or one YAML file) and train the MTL baseline; returns the model folder."""
    return run_command(argv)


if __name__ == "__main__":
    main()
