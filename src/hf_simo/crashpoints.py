"""Named points where a test can freeze a writer, to kill it there (`kill -9`) as a real crash would land.

A process started with ``HF_SIMO_PAUSE_AT=<point>`` and ``HF_SIMO_PAUSE_FILE=<path>`` stops when it reaches that
point: it writes its pid to the file and waits while the file exists. The test then kills it, or deletes the file to
let it go on (to hold it at a chosen moment of a concurrent run); a process pauses at most once per point. Without
the variables a point costs one environment lookup. Points (``<name>``: the name of the file or folder written): ``atomic:folder-complete:<name>`` (a new folder is
complete, the previous output untouched), ``atomic:old-moved-aside:<name>`` (between the two renames of a swap),
``atomic:swapped:<name>`` (before the previous output is deleted), ``atomic:file-written:<name>`` (a file's
temporary is complete, not yet renamed), ``merge:writing`` (a merge has written its first tensor) and
``train:step-<N>`` (after optimizer step N of the training loop and its checkpoint).
"""

from __future__ import annotations

import os
import time
from pathlib import Path


PAUSE_AT_ENV = "HF_SIMO_PAUSE_AT"
PAUSE_FILE_ENV = "HF_SIMO_PAUSE_FILE"
MAX_PAUSE_SECONDS = 600.0  # a forgotten pause ends the process instead of hanging a test run forever
_paused: set[str] = set()


def pause_point(name: str) -> None:
    """Pause here when ``HF_SIMO_PAUSE_AT`` names this point (see the module docstring)."""
    if os.environ.get(PAUSE_AT_ENV) != name or name in _paused:
        return
    _paused.add(name)
    marker = Path(os.environ.get(PAUSE_FILE_ENV) or f"hf_simo_paused_{os.getpid()}")
    marker.write_text(str(os.getpid()))
    deadline = time.monotonic() + MAX_PAUSE_SECONDS
    while marker.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"paused at {name!r} for {MAX_PAUSE_SECONDS:.0f} s and nobody resumed or killed me")
        time.sleep(0.02)


__all__ = ["PAUSE_AT_ENV", "PAUSE_FILE_ENV", "pause_point"]
