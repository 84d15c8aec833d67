"""A `dpt` depth task -> `DPTForDepthEstimation` on the DINOv2 backbone (what `importers/dpt.py` reads back).
DPT segmentation/normals heads are not exported: `DPTForSemanticSegmentation` ignores a DINOv2 backbone config."""

from __future__ import annotations

from transformers import DPTForDepthEstimation

from ...heads import dpt_config_for
from ..importers import dpt
from ..plan import Exporter


EXPORTER = Exporter(
    head="dpt",
    target_class=DPTForDepthEstimation,
    build_config=dpt_config_for,
    importer=dpt.IMPORTER,
    kinds=("depth", "disparity"),
)
