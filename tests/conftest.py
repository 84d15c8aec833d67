"""Shared fixtures: tiny DINOv2 configs and models built locally, an isolated HF cache, one CPU thread.

Nothing here touches the network: `HF_HUB_OFFLINE=1` is set before huggingface_hub is imported, and `HF_HOME` /
`MPLCONFIGDIR` point to a per-session temporary folder so nothing lands in `~/.cache`.
"""

from __future__ import annotations

import os
import tempfile


_SESSION_TMP = tempfile.mkdtemp(prefix="hf_simo_tests_")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = os.path.join(_SESSION_TMP, "hf_home")
os.environ["HF_HUB_CACHE"] = os.path.join(_SESSION_TMP, "hf_home", "hub")
os.environ["MPLCONFIGDIR"] = os.path.join(_SESSION_TMP, "mpl")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402


torch.set_num_threads(1)

from transformers import Dinov2Config, Dinov2Model  # noqa: E402

from hf_simo import SimoConfig, SimoModel  # noqa: E402


TINY_BACKBONE = {
    "hidden_size": 32,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "mlp_ratio": 2,
    "patch_size": 8,
    "image_size": 32,
}
TINY_DPT = {"fusion_hidden_size": 16}

# one task of every kind, with both head types represented
TINY_TASKS = {
    "segmentation": {"kind": "semantic_segmentation", "num_outputs": 5},
    "depth": {"kind": "depth", "head": "dpt", "head_options": TINY_DPT},
    "normals": {"kind": "surface_normals"},
    "disparity": {"kind": "disparity"},
    "edges": {"kind": "regression", "num_outputs": 2, "head": "dpt", "head_options": TINY_DPT},
}


def tiny_backbone_config(**overrides) -> Dinov2Config:
    return Dinov2Config(**{**TINY_BACKBONE, **overrides})


def tiny_config(tasks: dict | None = None, **overrides) -> SimoConfig:
    return SimoConfig(
        backbone_config=tiny_backbone_config(), tasks=TINY_TASKS if tasks is None else tasks, **overrides
    )


def tiny_model(tasks: dict | None = None, seed: int = 0) -> SimoModel:
    torch.manual_seed(seed)
    return SimoModel(tiny_config(tasks)).eval()


def random_labels(config: SimoConfig, batch: int, height: int, width: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Valid labels of the right shape and dtype for every task of `config`."""
    gen = torch.Generator().manual_seed(seed)
    labels = {}
    for name, spec in config.task_specs.items():
        if spec.kind == "semantic_segmentation":
            labels[name] = torch.randint(0, spec.num_outputs, (batch, height, width), generator=gen)
        elif spec.kind == "surface_normals":
            labels[name] = torch.nn.functional.normalize(torch.randn(batch, 3, height, width, generator=gen), dim=1)
        else:
            labels[name] = torch.rand(batch, spec.num_outputs, height, width, generator=gen) + 0.1
    return labels


def write_hub_cache(folder: str | os.PathLike, repo_id: str, revision: str = "main", commit: str | None = None) -> str:
    """Copy a saved model folder into the offline HF cache as `repo_id` at `revision`; returns the commit id.

    Same layout as huggingface_hub's cache: `models--org--name/refs/<revision>` holds a 40-hex commit and
    `snapshots/<commit>/` the files.
    """
    commit = commit or hashlib.sha1(f"{repo_id}@{revision}:{folder}".encode()).hexdigest()
    repo_dir = Path(os.environ["HF_HUB_CACHE"]) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / commit
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(folder, snapshot)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / revision).write_text(commit)
    return commit


@pytest.fixture
def tiny_backbone() -> Dinov2Model:
    torch.manual_seed(0)
    return Dinov2Model(tiny_backbone_config()).eval()


@pytest.fixture
def simo_model() -> SimoModel:
    return tiny_model()


@pytest.fixture
def hub_cache() -> Path:
    """The offline HF hub cache the tests write into (cleared after each test)."""
    path = Path(os.environ["HF_HUB_CACHE"])
    path.mkdir(parents=True, exist_ok=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def read_json(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text())


# ---------------------------------------------------------------------------------------------- crash tests


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
