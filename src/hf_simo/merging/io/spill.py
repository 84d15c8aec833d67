"""Tensors parked on disk for a moment (I/O): a two-read merge checks a patched output tensor against its base once
the patch is known, and keeps those bases in an anonymous temporary file rather than in memory."""

from __future__ import annotations

import tempfile

import torch

from .writer import tensor_bytes


class TensorSpill:
    """`put(key, tensor)` appends a tensor to an anonymous temporary file, `take(key)` reads it back once (the file
    is created on the first `put`, removed on `close`)."""

    def __init__(self):
        self._file = None
        self._where: dict[str, tuple[int, torch.dtype, tuple[int, ...]]] = {}

    def put(self, key: str, tensor: torch.Tensor) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        offset = self._file.seek(0, 2)
        self._file.write(tensor_bytes(tensor))
        self._where[key] = (offset, tensor.dtype, tuple(tensor.shape))

    def take(self, key: str) -> torch.Tensor:
        offset, dtype, shape = self._where.pop(key)
        tensor = torch.empty(shape, dtype=dtype)
        buffer = memoryview(tensor.reshape(-1).view(torch.uint8).numpy())
        self._file.flush()
        self._file.seek(offset)
        done = 0
        while done < len(buffer):
            count = self._file.readinto(buffer[done:])
            if not count:
                raise RuntimeError(f"spilled tensor {key!r} is truncated")
            done += count
        return tensor

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._where.clear()

    def __enter__(self) -> TensorSpill:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["TensorSpill"]
