"""Writing a merged checkpoint tensor by tensor: safetensors shards whose headers are known before any data.

`safetensors.torch.save_file` needs every tensor of a file in memory at once. A merge knows the names, dtypes and
shapes of all its outputs before computing any of them, so it can plan the shards (with huggingface_hub's
`split_torch_state_dict_into_shards`, on meta tensors, the same layout and names `save_pretrained` produces), write
each file's header first, then append each tensor's bytes as soon as it is computed. Peak memory is one tensor.
The format (8-byte little-endian header length, JSON header padded with spaces to 8 bytes, then the raw
little-endian data in header order) is the one `safe_open` validates on read.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path
from typing import BinaryIO

import torch
from huggingface_hub import split_torch_state_dict_into_shards

from ...hub import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME


DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
DEFAULT_MAX_SHARD_SIZE = "5GB"


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The raw little-endian bytes of a tensor, without a copy when it is already contiguous."""
    flat = tensor.detach().contiguous().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.view(torch.uint8)
    return memoryview(flat.view(torch.uint8).numpy())


class ShardedSafetensorsWriter:
    """Writes `(name, dtype, shape)` tensors, in the planned order, into `model.safetensors` or shards + index.

    Call `write(name, tensor)` once per planned tensor in plan order, then `close()`; the files are complete only
    after `close()` (which checks that every planned tensor was written).
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        plan: list[tuple[str, torch.dtype, tuple[int, ...]]],
        max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
        metadata: dict[str, str] | None = None,
    ):
        if sys.byteorder != "little":
            raise RuntimeError("the streaming safetensors writer supports little-endian machines only")
        self.folder = Path(folder)
        self.metadata = {"format": "pt", **(metadata or {})}
        names = [name for name, _, _ in plan]
        if len(set(names)) != len(names):
            raise ValueError("duplicate tensor names in the write plan")
        meta = {name: torch.empty(shape, dtype=dtype, device="meta") for name, dtype, shape in plan}
        split = split_torch_state_dict_into_shards(meta, max_shard_size=max_shard_size)
        self.sharded = split.is_sharded
        self.files: list[tuple[str, list[str]]] = []
        for filename, tensors in split.filename_to_tensors.items():
            self.files.append((SAFE_WEIGHTS_NAME if not self.sharded else filename, list(tensors)))
        self.order = [name for _, tensors in self.files for name in tensors]
        self._position = {name: index for index, name in enumerate(self.order)}
        self.info = {name: (dtype, tuple(shape)) for name, dtype, shape in plan}
        self.total_size = sum(_nbytes(dtype, shape) for _, dtype, shape in plan)
        self._next = 0
        self._file_index = -1
        self._handle: BinaryIO | None = None
        self._remaining_in_file = 0
        self._where: dict[str, tuple[Path, int]] = {}  # written tensor -> (file, absolute offset of its bytes)

    def _open_next_file(self) -> None:
        self._file_index += 1
        filename, tensors = self.files[self._file_index]
        header: dict[str, object] = {"__metadata__": self.metadata}
        offset = 0
        offsets = {}
        for name in tensors:
            dtype, shape = self.info[name]
            size = _nbytes(dtype, shape)
            header[name] = {"dtype": DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
            offsets[name] = offset
            offset += size
        encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
        encoded += b" " * ((8 - (8 + len(encoded)) % 8) % 8)
        for name, begin in offsets.items():
            self._where[name] = (self.folder / filename, 8 + len(encoded) + begin)
        self._handle = open(self.folder / filename, "wb")  # noqa: SIM115 - closed in _close_file/close
        self._handle.write(struct.pack("<Q", len(encoded)))
        self._handle.write(encoded)
        self._remaining_in_file = len(tensors)

    def _close_file(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def write(self, name: str, tensor: torch.Tensor) -> None:
        if self._next >= len(self.order):
            raise RuntimeError(f"tensor {name!r} is not in the write plan (all planned tensors are written)")
        expected = self.order[self._next]
        if name != expected:
            raise RuntimeError(f"tensor {name!r} written out of order; expected {expected!r}")
        dtype, shape = self.info[name]
        if tensor.dtype != dtype or tuple(tensor.shape) != shape:
            raise RuntimeError(
                f"tensor {name!r}: got {tensor.dtype} {list(tensor.shape)}, planned {dtype} {list(shape)}"
            )
        if self._remaining_in_file == 0:
            self._close_file()
            self._open_next_file()
        self._handle.write(tensor_bytes(tensor))
        self._remaining_in_file -= 1
        self._next += 1

    def read(self, name: str) -> torch.Tensor:
        """A tensor written earlier, read back from its file (the merge patches a few entries of some tensors once
        its global statistics are final: `rewrite` puts them back in place)."""
        path, offset, dtype, shape = self._written(name)
        tensor = torch.empty(shape, dtype=dtype)
        buffer = memoryview(tensor.reshape(-1).view(torch.uint8).numpy())
        fd = os.open(path, os.O_RDONLY)
        try:
            done = 0
            while done < len(buffer):
                count = os.preadv(fd, [buffer[done:]], offset + done)
                if count <= 0:
                    raise RuntimeError(f"tensor {name!r}: {path.name} is shorter than its header says")
                done += count
        finally:
            os.close(fd)
        return tensor

    def rewrite(self, name: str, tensor: torch.Tensor) -> None:
        """Overwrite a tensor written earlier with new values of the same dtype and shape, in place."""
        path, offset, dtype, shape = self._written(name)
        if tensor.dtype != dtype or tuple(tensor.shape) != shape:
            raise RuntimeError(f"tensor {name!r}: got {tensor.dtype} {list(tensor.shape)}, planned {dtype} {shape}")
        data = tensor_bytes(tensor)
        fd = os.open(path, os.O_WRONLY)
        try:
            done = 0
            while done < len(data):
                done += os.pwrite(fd, data[done:], offset + done)
        finally:
            os.close(fd)

    def _written(self, name: str) -> tuple[Path, int, torch.dtype, tuple[int, ...]]:
        if name not in self._where or self._position[name] >= self._next:
            raise RuntimeError(f"tensor {name!r} has not been written")
        if self._handle is not None:
            self._handle.flush()  # the buffered bytes must reach the file before it is read or patched by offset
        path, offset = self._where[name]
        return (path, offset, *self.info[name])

    def close(self) -> list[str]:
        """Finish the last file and write the index when sharded; returns the weight file names."""
        self._close_file()
        if self._next != len(self.order):
            missing = self.order[self._next :]
            raise RuntimeError(f"{len(missing)} planned tensor(s) were not written, e.g. {missing[:3]}")
        names = [filename for filename, _ in self.files]
        if self.sharded:
            index = {
                "metadata": {"total_size": self.total_size},
                "weight_map": {name: filename for filename, tensors in self.files for name in tensors},
            }
            (self.folder / SAFE_WEIGHTS_INDEX_NAME).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
            names.append(SAFE_WEIGHTS_INDEX_NAME)
        return names

    def abort(self) -> None:
        self._close_file()


def _nbytes(dtype: torch.dtype, shape: tuple[int, ...]) -> int:
    numel = 1
    for size in shape:
        numel *= size
    return numel * torch.empty((), dtype=dtype).element_size()


__all__ = ["DEFAULT_MAX_SHARD_SIZE", "DTYPE_NAMES", "ShardedSafetensorsWriter", "tensor_bytes"]
