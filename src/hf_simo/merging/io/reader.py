"""Reading checkpoint tensors one at a time: safetensors files validated by `safe_open` and read with `pread` into
process-owned buffers (`SafetensorsFile`, `TensorReader`), or, when the user allows it, pickle state dicts
(`load_pickle_weights`, `torch.load(weights_only=True)`). I/O only: no merging here."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from ...hub import PICKLE_PATTERNS, CheckpointError


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class SafetensorsFile:
    """One safetensors file: validated by `safe_open`, then read with `pread` into freshly allocated tensors.

    `safe_open(...).get_tensor` maps the file and returns tensors backed by that mapping: every page read stays in
    the process' resident set until the file is closed, so reading T checkpoints through open handles would grow
    the RSS by T checkpoints. Reading the bytes into anonymous memory instead keeps the resident set at the tensors
    actually alive.
    """

    def __init__(self, path: Path, source: str):
        self.path = path
        try:
            with safe_open(str(path), framework="pt") as handle:  # validates the header and that data covers the file
                keys = list(handle.keys())
        except Exception as err:  # SafetensorError is not importable under a stable name
            raise CheckpointError(
                f"{source}: {path.name} is not a readable safetensors file (truncated or corrupted?): {err}"
            ) from err
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        self.data_start = 8 + length
        self.entries: dict[str, tuple[torch.dtype, tuple[int, ...], int, int]] = {}
        for key in keys:
            entry = header[key]
            if entry["dtype"] not in _SAFETENSORS_DTYPES:
                raise CheckpointError(f"{source}: tensor {key!r} has unsupported dtype {entry['dtype']}")
            begin, end = entry["data_offsets"]
            self.entries[key] = (_SAFETENSORS_DTYPES[entry["dtype"]], tuple(entry["shape"]), begin, end)
        self.fd: int | None = os.open(path, os.O_RDONLY)

    def read(self, key: str, source: str) -> torch.Tensor:
        dtype, shape, begin, end = self.entries[key]
        tensor = torch.empty(shape, dtype=dtype)
        size = end - begin
        if size:
            view = tensor.reshape(-1)
            buffer = memoryview(view.view(torch.uint8).numpy())
            done = 0
            while done < size:
                count = os.preadv(self.fd, [buffer[done:]], self.data_start + begin + done)
                if count <= 0:
                    raise CheckpointError(f"{source}: {self.path.name} ends inside tensor {key!r} (truncated file)")
                done += count
        return tensor

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class TensorReader:
    """Tensor-by-tensor access to the weights of one checkpoint.

    safetensors files are validated with `safe_open` (header, and data covering the file exactly) and read one
    tensor at a time into memory the process owns (see `SafetensorsFile`). Pickle weights, read only when the user
    allowed it, and in-memory models are served from a state dict (pickles are loaded with
    `torch.load(weights_only=True, mmap=True)`).
    """

    def __init__(self, source: str, files: list[Path] | None = None, state_dict: Mapping[str, Any] | None = None):
        self.source = source
        self._files: list[SafetensorsFile] = []
        self._where: dict[str, SafetensorsFile] = {}
        self._info: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
        self._state_dict = state_dict
        self.owns_tensors = state_dict is None  # get() returns fresh buffers the caller may modify
        if state_dict is not None:
            for key, value in state_dict.items():
                if not isinstance(value, torch.Tensor):
                    raise CheckpointError(f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor")
                self._info[key] = (value.dtype, tuple(value.shape))
            return
        try:
            for path in files or []:
                handle = SafetensorsFile(Path(path), source)
                self._files.append(handle)
                for key, (dtype, shape, _, _) in handle.entries.items():
                    if key in self._where:
                        raise CheckpointError(f"{source}: tensor {key!r} appears in two weight files")
                    self._where[key] = handle
                    self._info[key] = (dtype, shape)
        except BaseException:
            self.close()
            raise

    def keys(self) -> list[str]:
        return list(self._info)

    def info(self, key: str) -> tuple[torch.dtype, tuple[int, ...]]:
        return self._info[key]

    def get(self, key: str) -> torch.Tensor:
        if self._state_dict is not None:
            return self._state_dict[key].detach()
        return self._where[key].read(key, self.source)

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        self._files, self._where = [], {}


def load_pickle_weights(folder: Path, source: str) -> dict[str, torch.Tensor]:
    files = sorted(p for pattern in PICKLE_PATTERNS for p in folder.glob(pattern))
    if not files:
        raise CheckpointError(f"{source} has no weights (neither safetensors nor pickle files)")
    state_dict: dict[str, torch.Tensor] = {}
    for path in files:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:
            raise CheckpointError(f"{source}: cannot load {path.name} ({err})") from err
        if isinstance(loaded, Mapping) and "state_dict" in loaded and isinstance(loaded["state_dict"], Mapping):
            loaded = loaded["state_dict"]
        if not isinstance(loaded, Mapping):
            raise CheckpointError(f"{source}: {path.name} does not hold a state dict")
        state_dict.update(loaded)
    return state_dict


__all__ = ["SafetensorsFile", "TensorReader", "load_pickle_weights"]
