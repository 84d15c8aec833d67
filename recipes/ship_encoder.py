"""Turn a finished (or plateau-stopped) encoder pre-training run into the encoder shipped with hf_simo.

    python recipes/ship_encoder.py --run_dir outputs/pretrain-shipped

writes `src/hf_simo/encoders/embedded/` (config.json, model.safetensors, provenance.json, loss_curve.jsonl,
loss_curve.png; float32 if it fits in 10 MB, else stored in bfloat16). A run that is still going or was stopped
keeps its newest checkpoint; stop it first (its process id is in its log) so that the checkpoint is final. Arguments:
`--help`.
"""

from hf_simo.cli.ship_encoder import main as run_command


def main(argv=None):
    """Parse arguments and export; returns the written folder."""
    return run_command(argv)


if __name__ == "__main__":
    main()
