"""`import hf_simo` is lazy (PEP 562 tables) yet registers hf_simo with transformers "on import": in a fresh
interpreter, whichever comes first — hf_simo or transformers' Auto classes / pipelines — the `simo` model type, the
Auto classes, the image processor and the `simo-dense-prediction` pipeline end up registered."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


SRC = Path(__file__).resolve().parents[1] / "src"

REGISTERED = """
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_DEPTH_ESTIMATION_MAPPING, MODEL_MAPPING
from transformers.pipelines import PIPELINE_REGISTRY
from hf_simo import SimoConfig, SimoModel
assert CONFIG_MAPPING["simo"] is SimoConfig
assert MODEL_MAPPING[SimoConfig] is SimoModel and MODEL_FOR_DEPTH_ESTIMATION_MAPPING[SimoConfig] is SimoModel
assert SimoConfig in IMAGE_PROCESSOR_MAPPING
assert "simo-dense-prediction" in PIPELINE_REGISTRY.supported_tasks
print("registered")
"""

ORDERS = {
    "hf_simo first, then the Auto classes": "import hf_simo\nfrom transformers import AutoModel\n",
    "the Auto classes first": "from transformers import AutoConfig, AutoModel\nimport hf_simo\n",
    "hf_simo first, then pipeline()": "import hf_simo\nfrom transformers import pipeline\n",
    "the pipelines first": "from transformers.pipelines import PIPELINE_REGISTRY\nimport hf_simo\n",
    "a model name first": "from hf_simo import SimoConfig\n",
    "another transformers model first": "import hf_simo\nfrom transformers import DPTForDepthEstimation\n",
}


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


# each order is a fresh interpreter importing transformers' pipelines (10-25 s on these machines): the two that
# hit both registration hooks (Auto classes imported first, pipeline() after hf_simo) run by default, the rest
# under `pytest -m slow`
DEFAULT_ORDERS = ("the Auto classes first", "hf_simo first, then pipeline()")


@pytest.mark.parametrize(
    "order", [o if o in DEFAULT_ORDERS else pytest.param(o, marks=pytest.mark.slow) for o in ORDERS]
)
def test_registration_happens_in_either_import_order(order):
    result = _python(ORDERS[order] + textwrap.dedent(REGISTERED))
    assert result.returncode == 0 and result.stdout.strip() == "registered", result.stderr[-3000:]


def test_auto_classes_load_a_simo_folder_after_a_bare_import(tmp_path):
    code = f"""
import hf_simo, torch
from transformers import AutoConfig, AutoModel, Dinov2Config
config = hf_simo.SimoConfig(
    backbone_config=Dinov2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                                 patch_size=8, image_size=16),
    tasks={{"depth": {{"kind": "depth"}}}},
)
hf_simo.SimoModel(config).save_pretrained({str(tmp_path / "model")!r})
"""
    assert _python(code).returncode == 0
    load = f"import hf_simo\nfrom transformers import AutoModel\nm = AutoModel.from_pretrained({str(tmp_path / 'model')!r})\nprint(type(m).__name__)"
    result = _python(load)
    assert result.stdout.strip() == "SimoModel", result.stderr[-3000:]


def test_a_bare_import_loads_neither_torch_nor_transformers():
    result = _python("import sys, hf_simo\nprint(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    assert result.stdout.strip() == "[]", result.stderr


NOT_FOR_HELP = ("torch", "transformers", "numpy", "httpx2", "safetensors", "datasets")
CLI_START = """
import contextlib, io, sys
from hf_simo.cli import main
for argv in {argvs!r}:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
    print(" ".join(argv), code, sorted(m for m in {heavy!r} if m in sys.modules))
"""


def test_the_verbs_help_and_the_start_of_a_merge_import_no_heavy_package():
    """Every verb's --help (its parser: `SimoArgumentParser`, no transformers), and a merge up to its usage error,
    in one interpreter: each line says what was imported by then (the first verb that imports one fails)."""
    from hf_simo.cli import VERBS

    argvs = [["--help"], *[[verb, "--help"] for verb in VERBS], ["merge", "--task_checkpoints", "seg=org/seg"]]
    result = _python(CLI_START.format(argvs=argvs, heavy=NOT_FOR_HELP))
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(argvs), result.stderr[-3000:]
    codes = [0] * (len(argvs) - 1) + [2]  # the merge: --output_dir is required (exit 2 before any work)
    assert lines == [f"{' '.join(argv)} {code} []" for argv, code in zip(argvs, codes)], result.stderr[-3000:]
    control = _python("import numpy\n" + CLI_START.format(argvs=[["merge", "--help"]], heavy=NOT_FOR_HELP))
    assert control.stdout.strip() == "merge --help 0 ['numpy']", control.stderr[-3000:]  # the check sees imports


def test_a_merge_runs_to_the_end_in_a_fresh_interpreter(tmp_path):
    """What a user types, in a new process: with nothing imported beforehand (no transformers until the verb runs),
    every module the run reaches must import what it uses (a tqdm-state lookup once assumed huggingface_hub's)."""
    from helpers.checkpoints import build_sources

    base, folders = build_sources(tmp_path / "src", tasks=("segmentation", "depth"))
    out = tmp_path / "merged"
    argv = [sys.executable, "-m", "hf_simo.cli", "merge", "--task_checkpoints", *map(str, folders)]
    argv += ["--base_model", str(base), "--alpha", "0.5", "--output_dir", str(out), "--disable_tqdm"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()


def _tables() -> dict[str, dict[str, str]]:
    tables = {}
    for init in sorted((SRC / "hf_simo").rglob("__init__.py")):
        for node in ast.walk(ast.parse(init.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_EXPORTS":
                package = ".".join(init.parent.relative_to(SRC).parts)
                tables[package] = ast.literal_eval(node.value)
    return tables


def test_every_package_is_a_lazy_table():
    packages = {".".join(p.parent.relative_to(SRC).parts) for p in (SRC / "hf_simo").rglob("__init__.py")}
    # no public names to load lazily: the dispatcher, helpers, package data (encoders: a few stdlib-only functions)
    plain = {
        "hf_simo.cli",
        "hf_simo.utils",
        "hf_simo.accelerate_configs",
        "hf_simo.evaluate_metrics",
        "hf_simo.encoders",
    }
    assert packages - plain - set(_tables()) == set()


@pytest.mark.parametrize("package", sorted(_tables()))
def test_every_lazy_name_resolves_to_its_module(package):
    module = importlib.import_module(package)
    table = _tables()[package]
    assert sorted(module.__all__) == sorted(table) and set(table) <= set(dir(module))
    for name, target in table.items():
        value = getattr(module, name)
        assert value is getattr(importlib.import_module(target), name), (package, name)
    with pytest.raises(AttributeError, match="has no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018


def test_an_exported_name_wins_over_its_submodule_of_the_same_name(tmp_path, monkeypatch):
    """`from hf_simo.merging import search` is the function even after `hf_simo/merging/search.py` was imported (the
    import system sets the submodule on its package; an eager `__init__` rebinds the name, so must the table)."""
    package = tmp_path / "lazypkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from hf_simo.utils.lazy import lazy_exports\n"
        "__getattr__, __dir__ = lazy_exports(__name__, {'search': 'lazypkg.search', 'tools': 'lazypkg.tools'})\n"
    )
    (package / "search.py").write_text("def search():\n    return 'the function'\ndef helper(): ...\n")
    (package / "tools.py").write_text("VALUE = 1\n")  # no `tools` object inside: the name is the submodule
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import lazypkg
        from lazypkg.search import helper  # noqa: F401 - imports the submodule first

        assert lazypkg.search() == "the function"
        import lazypkg.search  # noqa: F401

        assert callable(lazypkg.search) and lazypkg.search() == "the function"
        assert lazypkg.tools.VALUE == 1 and lazypkg.tools.__name__ == "lazypkg.tools"
    finally:
        for name in [n for n in sys.modules if n == "lazypkg" or n.startswith("lazypkg.")]:
            del sys.modules[name]
