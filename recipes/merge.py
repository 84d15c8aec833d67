"""Merge single-task checkpoints into one multi-task `SimoModel` folder (paper section 3.0.2), from a YAML file or
the command line: the same options as `hf-simo merge` (`hf_simo.cli.merge.ARGUMENTS`), one field per key.

Launch (merging is I/O and elementwise arithmetic: one process is enough, `accelerate launch` works too):

    python recipes/merge.py --config recipes/configs/merge.yaml
    python recipes/merge.py --config recipes/configs/merge.yaml --alpha 0.8 --output_dir outputs/merged-a08
    python recipes/merge.py --output_dir merged --base_model facebook/dinov2-base \
        --task_checkpoints seg=org/nyuv2-seg depth=org/nyuv2-depth@v1 normals=org/nyuv2-normals \
        --merge_method ties --density 0.2
    accelerate launch recipes/merge.py --config recipes/configs/merge.yaml

Checkpoints are read tensor by tensor (peak memory does not grow with the number of tasks), the result is written
under a temporary name and renamed at the end, with its model card; `push_to_hub: true` (with `hub_model_id:
org/name`) publishes it. To tune α on validation data first, use `hf_simo.merging.search` or
`recipes/realign.py --mode none`.
"""

from hf_simo.cli.merge import recipe_main


def main(argv=None):
    """Parse the merge options (command line and/or `--config x.yaml`) and merge; returns the folder."""
    return recipe_main(argv)


if __name__ == "__main__":
    main()
