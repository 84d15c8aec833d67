"""Merge single-task checkpoints into one multi-task `SimoModel` folder (paper section 3.0.2), from a YAML file or
the command line: the same options as `hf-simo merge`, one `MergeArguments` field per key.

Launch (merging is I/O and elementwise arithmetic: one process is enough, `accelerate launch` works too):

    python recipes/merge.py recipes/configs/merge.yaml
    python recipes/merge.py --output_dir merged --base facebook/dinov2-base \
        --tasks seg=org/nyuv2-seg depth=org/nyuv2-depth@v1 normals=org/nyuv2-normals --method ties --density 0.2
    accelerate launch recipes/merge.py recipes/configs/merge.yaml

Checkpoints are read tensor by tensor (peak memory does not grow with the number of tasks), the result is written
under a temporary name and renamed at the end, with its model card; `push_to_hub: org/name` publishes it. To tune α
on validation data first, use `hf_simo.merging.search` or `recipes/realign.py --mode none`.
"""

from hf_simo.cli.merge import recipe_main


def main(argv=None):
    """Parse `MergeArguments` (command line, `--config x.yaml`, or one YAML file) and merge; returns the folder."""
    return recipe_main(argv)


if __name__ == "__main__":
    main()
