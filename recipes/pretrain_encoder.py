"""Pre-train the small DINOv2 encoder of the embedded benchmark with masked image modelling (SimMIM).

No task labels are used: 8x8-pixel patches on 64-pixel benchmark images, blocks of 16 pixels masked with DINOv2's
own `mask_token`, a linear decoder regressing the masked (per-patch normalised) pixels. The result is a standard
`Dinov2Model` folder (config.json + model.safetensors) that `finetune.py` / `train_mtl.py` accept like
`facebook/dinov2-base`. With no `--output_dir` it goes to `$HF_HOME/hf_simo/encoders/<key>` (the cache the other
recipes use when no `--model_name_or_path` is given); the same arguments reuse it.

Launch (one process, or two CPU processes on gloo, or GPUs):

    accelerate launch recipes/pretrain_encoder.py
    accelerate launch recipes/pretrain_encoder.py recipes/configs/pretrain_encoder.yaml
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 recipes/pretrain_encoder.py
    accelerate launch --config_file $(python -c "import hf_simo.accelerate_configs as c; print(c.config_path('single_gpu'))") \
        recipes/pretrain_encoder.py --mixed_precision bf16

Defaults (what `--pretrain_encoder` of the other recipes builds): hidden 128, 4 blocks, 4 heads, patch 8 (0.83M
parameters), mask ratio 0.5 in 16-pixel blocks, 6 epochs of the 2000 training images, batch 64, AdamW lr 2e-3 with
one-cycle (5% warm-up), clipping 25: 1.5-2.5 minutes on 2 CPU cores. Arguments: `--help`.

The encoder shipped with hf_simo is this recipe with a much larger budget on the benchmark's pre-training set
(`--dataset pretraining`: 50,000 more varied images), then `recipes/ship_encoder.py`:

    OMP_NUM_THREADS=1 python recipes/pretrain_encoder.py recipes/configs/pretrain_encoder_shipped.yaml
    python recipes/ship_encoder.py --run_dir outputs/pretrain-shipped

It saves a checkpoint every 100 steps; stopped (kill its process) and relaunched with the same command, it resumes
exactly. Its loss curve is `outputs/pretrain-shipped/loss_curve.{jsonl,png}` when it ends and
`logs/pretrain_encoder/metrics.jsonl` while it runs.
"""

import os


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle OpenMP threads must not spin on few cores

from hf_simo.cli.pretrain_encoder import main as run_command


def main(argv=None):
    """Parse arguments (or one YAML file) and pre-train; returns the encoder folder."""
    return run_command(argv)


if __name__ == "__main__":
    main()
