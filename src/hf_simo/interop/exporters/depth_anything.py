"""A `depth_anything` task -> `DepthAnythingForDepthEstimation` (what `importers/depth_anything.py` reads back)."""

from __future__ import annotations

from transformers import DepthAnythingForDepthEstimation

from ...heads import depth_anything_config_for
from ..importers import depth_anything
from ..plan import Exporter


EXPORTER = Exporter(
    head="depth_anything",
    target_class=DepthAnythingForDepthEstimation,
    build_config=depth_anything_config_for,
    importer=depth_anything.IMPORTER,
)
