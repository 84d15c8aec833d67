"""Accelerate launch configurations shipped with hf_simo.

```bash
accelerate launch --config_file "$(python -m hf_simo.accelerate_configs cpu)" recipes/finetune.py
```

- ``cpu``: two processes on the CPU (gloo);
- ``single_gpu``: one GPU, bf16;
- ``multi_gpu``: every GPU of one machine, bf16;
- ``multi_node``: an example for two machines of eight GPUs.
"""

from __future__ import annotations

import sys
from pathlib import Path


_FOLDER = Path(__file__).parent


def available_configs() -> list[str]:
    """Names of the packaged configs."""
    return sorted(path.stem for path in _FOLDER.glob("*.yaml"))


def config_path(name: str) -> Path:
    """Path of a packaged config (`cpu`, `single_gpu`, `multi_gpu`, `multi_node`) for `--config_file`."""
    path = _FOLDER / f"{name.removesuffix('.yaml')}.yaml"
    if not path.is_file():
        raise ValueError(f"no accelerate config named {name!r}; available: {available_configs()}")
    return path


def config_paths() -> dict[str, Path]:
    """Every packaged config, name -> path."""
    return {name: config_path(name) for name in available_configs()}


def main(argv: list[str] | None = None) -> None:
    """`python -m hf_simo.accelerate_configs [name]`: print a config's path, or all of them."""
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        print(config_path(argv[0]))
    else:
        for name, path in config_paths().items():
            print(f"{name}: {path}")


__all__ = ["available_configs", "config_path", "config_paths", "main"]
