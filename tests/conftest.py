"""The test environment (an isolated HF cache, offline, one CPU thread) and the shared fixtures.

Nothing here touches the network: `HF_HUB_OFFLINE=1` is set before huggingface_hub is imported, and `HF_HOME` /
`MPLCONFIGDIR` point to a per-session temporary folder so nothing lands in `~/.cache`. Builders live in
`tests/helpers/` (`from helpers.tiny import tiny_model`); this file holds only the environment and the fixtures.
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

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402


torch.set_num_threads(1)

from transformers import Dinov2Model  # noqa: E402

from helpers.tiny import tiny_backbone_config, tiny_model  # noqa: E402
from hf_simo import SimoModel  # noqa: E402


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


@pytest.fixture
def no_hub_calls(monkeypatch) -> list[str]:
    """Any Hub download attempt raises (`helpers.hub.forbid_hub_calls`); the list records the attempts."""
    from helpers.hub import forbid_hub_calls

    return forbid_hub_calls(monkeypatch)
