"""Merge single-task checkpoints and re-align the merged model (paper sections 3.0.2 and 5): the main job.

The single-task checkpoints are merged (Task Arithmetic by default, α tuned on the validation split), then
re-aligned on the small multi-task validation split: `--mode head` retrains every head on cached features of the
frozen merged encoder; `--mode representation` (default) trains a rank-16 adapter after each transformer block,
output = block(x) + B·A·x, jointly with the heads on the unweighted mean multi-task loss, through PEFT. The result is
evaluated on the test split against the single-task models and the merged model (a paper-style table), folded into a
plain `SimoModel` and written atomically to `<output_dir>/model` (the PEFT adapter to `<output_dir>/adapter`), with a
model card; `--push_to_hub --hub_model_id org/name` publishes it.

Launch:

    accelerate launch recipes/realign.py                                    # embedded NYUv2-like benchmark
    accelerate launch recipes/realign.py --mode head --merge_method ties --density 0.2
    accelerate launch recipes/realign.py recipes/configs/realign.yaml
    accelerate launch recipes/realign.py --task_checkpoints seg=org/nyuv2-seg depth=org/nyuv2-depth@v1 \
        normals=org/nyuv2-normals --dataset nyuv2_real --dataset_path data/nyuv2 --base_model facebook/dinov2-base
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 recipes/realign.py

With no arguments: the embedded `nyuv2` benchmark (64 px; 2000 train / 200 validation / 500 test samples), its three
single-task checkpoints (trained with `recipes/finetune.py` on first use and cached in `outputs/finetune-nyuv2-*`),
Task Arithmetic with α tuned over 0.1..1.0 on the validation split, representation re-alignment with rank 16, lr
1e-3, up to 30 epochs with early stopping on 20% of the validation split, output
`outputs/realign-nyuv2-task_arithmetic-representation`. Arguments: `--help`.
"""

import os


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle OpenMP threads must not spin on few cores

from hf_simo.cli.realign import main as run_command


def main(argv=None):
    """Parse arguments (or one YAML file), merge, re-align, evaluate and save; returns the outcome."""
    return run_command(argv)


if __name__ == "__main__":
    main()
