"""Crash tests: a Python subprocess held at a `hf_simo.crashpoints` pause point, to `kill -9` it there."""

from __future__ import annotations

import os
from pathlib import Path


class PausedProcess:
    """A Python subprocess held at a `hf_simo.crashpoints` pause point: `kill()` it there (SIGKILL, as a crash) or
    `resume()` it. Its output goes to a file, read by `output()`, so a chatty child never blocks on a full pipe."""

    def __init__(self, args: list[str], point: str, folder: Path, timeout: float = 300.0):
        import subprocess
        import sys
        import time
        import uuid

        from hf_simo.crashpoints import PAUSE_AT_ENV, PAUSE_FILE_ENV

        token = uuid.uuid4().hex[:8]
        self.marker = Path(folder) / f"paused-{token}"
        self.log = Path(folder) / f"log-{token}.txt"
        env = {**os.environ, PAUSE_AT_ENV: point, PAUSE_FILE_ENV: str(self.marker)}
        with self.log.open("w") as log:
            self.process = subprocess.Popen([sys.executable, *args], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"exited ({self.process.returncode}) before {point!r}:\n{self.output()}")
            if time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"never reached {point!r}:\n{self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        import signal

        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)

    def resume(self, timeout: float = 300.0) -> int:
        self.marker.unlink()
        return self.process.wait(timeout=timeout)
