"""Safetensors files written and read without holding their tensors in memory: what lets a feature cache larger
than the machine's memory be built and trained on.

- `TensorSpool`: rows of named tensors appended along dim 0, one raw file per name (a batch at a time: the cache is
  never held whole while it is computed);
- `write_safetensors`: one safetensors file from spooled parts, copied file to file in order (the parts of several
  processes, concatenated in process order, give the rows of one process that computed everything), atomically;
- `map_safetensors`: the tensors of a safetensors file as views of a copy-on-write memory map (`torch.frombuffer`):
  indexing a row reads that row from disk (or the page cache), nothing else is loaded.

The format is safetensors' (8-byte little-endian header length, a JSON header padded with spaces to a multiple of 8,
then the raw bytes), so `safetensors.safe_open` / `load_file` read these files too. Tensors are laid out by element
size, largest first, so every tensor starts aligned to its element size.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from ..atomic import atomic_file


SAFETENSORS_DTYPES = {
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
TORCH_DTYPES = {code: dtype for dtype, code in SAFETENSORS_DTYPES.items()}


def _as_bytes(tensor: torch.Tensor) -> memoryview:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


class TensorSpool:
    """Tensors appended row-wise (dim 0) to raw files `<folder>/<name>.bin`; `entries()` describes what was written
    (dtype, row shape, rows per name) for `write_safetensors`."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        self.specs: dict[str, dict] = {}

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.bin"

    def append(self, name: str, tensor: torch.Tensor) -> None:
        if tensor.dtype not in SAFETENSORS_DTYPES:
            raise TypeError(f"{name}: dtype {tensor.dtype} cannot be stored in safetensors")
        spec = self.specs.setdefault(
            name, {"dtype": SAFETENSORS_DTYPES[tensor.dtype], "row_shape": list(tensor.shape[1:]), "rows": 0}
        )
        if spec["dtype"] != SAFETENSORS_DTYPES[tensor.dtype] or spec["row_shape"] != list(tensor.shape[1:]):
            raise ValueError(
                f"{name}: rows of shape {tuple(tensor.shape[1:])} ({tensor.dtype}) after rows of shape "
                f"{tuple(spec['row_shape'])} ({spec['dtype']})"
            )
        with open(self.path(name), "ab") as handle:
            handle.write(_as_bytes(tensor))
        spec["rows"] += tensor.shape[0]

    def entries(self) -> dict[str, dict]:
        return {name: dict(spec) for name, spec in self.specs.items()}


def write_safetensors(
    path: str | os.PathLike,
    parts: Sequence[tuple[Path, Mapping[str, dict]]],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """One safetensors file from spooled parts (`(folder, TensorSpool.entries())`, in row order): each tensor is the
    concatenation along dim 0 of its parts. Every part must hold the same names, dtypes and row shapes."""
    if not parts:
        raise ValueError("no parts to write")
    names = list(parts[0][1])
    for folder, entries in parts:
        if sorted(entries) != sorted(names):
            raise ValueError(f"part {folder} holds {sorted(entries)}, not {sorted(names)}")
        for name in names:
            first, this = parts[0][1][name], entries[name]
            if (first["dtype"], first["row_shape"]) != (this["dtype"], this["row_shape"]):
                raise ValueError(f"{name}: part {folder} has {this}, the first part {first}")

    def itemsize(name: str) -> int:
        return torch.empty((), dtype=TORCH_DTYPES[parts[0][1][name]["dtype"]]).element_size()

    order = sorted(names, key=lambda name: (-itemsize(name), name))  # aligned: larger elements first
    header: dict[str, object] = {"__metadata__": dict(metadata or {})}
    offset = 0
    for name in order:
        spec = parts[0][1][name]
        rows = sum(entries[name]["rows"] for _, entries in parts)
        shape = [rows, *spec["row_shape"]]
        size = itemsize(name) * rows * int(torch.Size(spec["row_shape"]).numel())
        header[name] = {"dtype": spec["dtype"], "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with atomic_file(path) as temporary, open(temporary, "wb") as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for name in order:
            for folder, _ in parts:
                part = Path(folder) / f"{name}.bin"
                if part.is_file():  # a part with zero rows of this tensor writes no file
                    with open(part, "rb") as source:
                        shutil.copyfileobj(source, out, 16 * 1024 * 1024)
    return Path(path)


def read_header(path: str | os.PathLike) -> tuple[dict, int]:
    """(header, offset of the data) of a safetensors file."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return header, 8 + length


def map_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(name -> tensor, metadata) of a safetensors file; the tensors are views of a private memory map of it."""
    header, start = read_header(path)
    metadata = header.pop("__metadata__", None) or {}
    tensors: dict[str, torch.Tensor] = {}
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY) if size > 0 else None
    for name, info in header.items():
        dtype = TORCH_DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        count = int(torch.Size(info["shape"]).numel())
        if count == 0 or mapped is None:
            tensors[name] = torch.empty(info["shape"], dtype=dtype)
            continue
        flat = torch.frombuffer(mapped, dtype=dtype, count=count, offset=start + begin)
        if flat.numel() * flat.element_size() != end - begin:
            raise ValueError(f"{path}: {name} has {end - begin} bytes for shape {info['shape']} of {info['dtype']}")
        tensors[name] = flat.reshape(info["shape"])
    return tensors, metadata


__all__ = ["SAFETENSORS_DTYPES", "TensorSpool", "map_safetensors", "read_header", "write_safetensors"]
