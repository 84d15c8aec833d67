"""Threads of a merge: `torch_threads` sets torch's intra-op threads for one merge, `serial_reductions` runs the
float reductions (norms, dots) on one thread so that every output is the same for any thread count."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..errors import MergeOptionError


@contextmanager
def serial_reductions() -> Iterator[None]:
    """Run float reductions (norms, dots) on one thread: their rounding then does not depend on the thread count,
    so every statistic, and LiNeS' automatic alpha, is the same for any `num_threads` (element-wise kernels, exact
    counts and the radix selection are thread-count independent anyway). Switching costs < 1 µs."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[int]:
    """`num_threads` intra-op threads for the merge (None: torch's default, all cores unless OMP_NUM_THREADS says
    otherwise), restored afterwards."""
    before = torch.get_num_threads()
    if num_threads is None:
        yield before
        return
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise MergeOptionError(f"num_threads must be an integer >= 1, got {num_threads!r}")
    torch.set_num_threads(num_threads)
    try:
        yield num_threads
    finally:
        torch.set_num_threads(before)


__all__ = ["serial_reductions", "torch_threads"]
