"""Writing a merged `SimoModel` folder (I/O): tensors streamed into sharded safetensors under a temporary name beside
the output, holding its lock, then config.json, preprocessor_config.json and the model card, swapped in at the very
end (`hf_simo.atomic.atomic_folder`): an error or a kill never leaves a partial output folder nor loses the previous
one."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from ...atomic import atomic_folder
from ...cards import write_model_card
from ...configuration_simo import SimoConfig
from ...crashpoints import pause_point
from ...image_processing_simo import make_image_processor
from ...modeling_simo import SimoModel
from .sources import MergeSources
from .writer import ShardedSafetensorsWriter


PREPROCESSOR_NAME = "preprocessor_config.json"


def saved_names(
    config: SimoConfig, shapes: Mapping[str, tuple[int, ...]], model: SimoModel | None = None
) -> dict[str, str]:
    """The names `SimoModel.save_pretrained` gives these state-dict tensors on disk.

    transformers 5 saves Dinov2 weights under their transformers-4 names (`attention.attention.query`, ...) by
    reverting its load-time conversion; merged folders follow the same convention so they look like any saved
    `SimoModel`. Tensors that transformers would concatenate on save (the SwiGLU gate/up pair) keep their
    in-memory names, which transformers loads as well. `model`: a `SimoModel` of `config` (on the meta device)
    when the caller has one.

    The conversion is reverted once for all tensors (reverting it tensor by tensor rebuilt transformers' conversion
    mapping 200+ times: ~1 s of every merge); a tensor that comes back under a new name is renamed, one that does
    not come back by itself (a converter combined it with others) is reverted alone, as before.
    """
    names = {name: name for name in shapes}
    try:
        from transformers.core_model_loading import revert_weight_conversion
    except ImportError:  # older or newer transformers: in-memory names are always loadable
        return names
    with torch.device("meta"):
        model = SimoModel(config) if model is None else model
        tensors = {name: torch.empty(shape) for name, shape in shapes.items()}
        try:
            together = revert_weight_conversion(model, dict(tensors))
        except Exception:  # a converter that cannot run on these tensors: revert each alone
            together = {}
        by_tensor = {id(tensor): target for target, tensor in together.items()}
        renamed = {}
        for name, tensor in tensors.items():
            target = by_tensor.get(id(tensor))
            renamed[name] = _revert_alone(revert_weight_conversion, model, name, tensor) if target is None else target
    targets = list(renamed.values())
    for name, target in renamed.items():
        names[name] = target if targets.count(target) == 1 else name
    return names


def _revert_alone(revert, model: SimoModel, name: str, tensor: torch.Tensor) -> str:
    try:
        result = list(revert(model, {name: tensor}))
    except Exception:  # a many-to-one converter cannot revert one tensor alone
        result = [name]
    return result[0] if len(result) == 1 else name


def write_preprocessor(sources: MergeSources, folder: Path, config: SimoConfig | None = None) -> None:
    """The image processor the heads were trained with (the first task's), else one made for the merged model's
    encoder (`config`: its image and patch size; DINOv2's 518 / 14 without it)."""
    found = []
    for checkpoint in sources.tasks:
        if checkpoint.path is not None and (checkpoint.path / PREPROCESSOR_NAME).is_file():
            found.append((checkpoint, json.loads((checkpoint.path / PREPROCESSOR_NAME).read_text())))
    if not found:
        make_image_processor(config).save_pretrained(folder)
        return
    first, reference = found[0]
    for other, data in found[1:]:
        if data != reference:
            warnings.warn(
                f"{other.describe()} has a different image processor than {first.describe()}; the merged model "
                "uses the latter",
                stacklevel=3,
            )
    shutil.copyfile(first.path / PREPROCESSOR_NAME, folder / PREPROCESSOR_NAME)


class FolderSink:
    """The merge's sink into the streamed shards: `sink(name, tensor)` in plan order (in-memory names), and `read` /
    `rewrite` of a tensor written earlier (a two-read merge patches a few entries once its statistics are final)."""

    def __init__(self, writer: ShardedSafetensorsWriter, rename: Mapping[str, str]):
        self.writer, self.rename = writer, rename

    def __call__(self, name: str, tensor: torch.Tensor) -> None:
        self.writer.write(self.rename[name], tensor)
        pause_point("merge:writing")

    def read(self, name: str) -> torch.Tensor:
        return self.writer.read(self.rename[name])

    def rewrite(self, name: str, tensor: torch.Tensor) -> None:
        self.writer.rewrite(self.rename[name], tensor)


@contextmanager
def write_merged_folder(
    output: Path,
    sources: MergeSources,
    config: SimoConfig,
    plan: Sequence[tuple[str, torch.dtype, tuple[int, ...]]],
    *,
    max_shard_size: int | str,
    overwrite: bool,
    wait_for_lock: bool,
    model: SimoModel | None = None,
) -> Iterator[FolderSink]:
    """A sink `(in-memory name, tensor)` for every tensor of `plan`, in order; on leaving the block the shards are
    completed, config.json (read at that point: the merge record is final), the preprocessor and the card written,
    and the folder swapped in. An exception discards everything."""
    rename = saved_names(config, {name: shape for name, _, shape in plan}, model)
    with atomic_folder(output, overwrite=overwrite, wait_for_lock=wait_for_lock) as temporary:
        writer = ShardedSafetensorsWriter(
            temporary, [(rename[name], dt, shape) for name, dt, shape in plan], max_shard_size=max_shard_size
        )
        try:
            yield FolderSink(writer, rename)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        config.save_pretrained(temporary)
        write_preprocessor(sources, temporary, config)
        write_model_card(temporary, config)


__all__ = ["PREPROCESSOR_NAME", "FolderSink", "saved_names", "write_merged_folder", "write_preprocessor"]
