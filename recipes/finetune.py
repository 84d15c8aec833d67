"""Two-stage single-task fine-tuning (paper section 3): a head on the frozen encoder, then encoder and head.

Stage 1 trains the head (linear by default, `--head dpt` for DPT) with the encoder frozen until the validation loss
stops improving; stage 2 fine-tunes everything. AdamW, one-cycle schedule with 5% warm-up, gradient clipping 25,
early stopping on the validation loss with the best weights restored. The single-task `SimoModel` is written
atomically to `<output_dir>/model` and can be pushed with `--push_to_hub --hub_model_id org/name`.

Launch:

    accelerate launch recipes/finetune.py                                   # embedded NYUv2-like benchmark
    accelerate launch recipes/finetune.py --task depth
    accelerate launch recipes/finetune.py recipes/configs/finetune_depth.yaml
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 recipes/finetune.py --task normals
    accelerate launch --multi_gpu --num_processes 4 --mixed_precision bf16 recipes/finetune.py \
        recipes/configs/finetune_nyuv2_dinov2_base.yaml                      # the paper's setting, real NYUv2

With no arguments: the first task of the embedded `nyuv2` benchmark (segmentation), the small encoder from
`pretrain_encoder.py` (built and cached on first use), batch 16, stage 1: 2 epochs at lr 1e-2 (patience 2),
stage 2: 3 epochs at lr 2e-3 (patience 3), output `outputs/finetune-nyuv2-<task>`. About 1-1.5 minutes per task on
2 CPU cores (plus 1.5-2.5 minutes once for the encoder); stage 2 moves the encoder by ‖τ‖/‖θ0‖ ≈ 0.25-0.33, enough for
task-arithmetic merging of the three tasks to lose about 40 points of normalized performance. Running the same command again
resumes an interrupted run, or does nothing if it finished. `--mixed_precision` and
`--gradient_accumulation_steps` default to what `accelerate launch` set (an option contradicting the launch is
refused). Options: `--help`; `--config x.yaml` plus options that override it.
"""

import os


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle OpenMP threads must not spin on few cores

from hf_simo.cli.finetune import main as run_command


def main(argv=None):
    """Parse arguments (or one YAML file) and fine-tune; returns the model folder."""
    return run_command(argv)


if __name__ == "__main__":
    main()
