"""The packaging promises: one place per setting, the CLI entry point, package data that ships."""

import configparser


try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import hf_simo
from hf_simo.metrics import EVALUATE_MODULE_PATH


ROOT = Path(__file__).resolve().parents[1]


def test_setup_cfg_only_mirrors_ruff_line_length_for_tools_that_cannot_read_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setup_cfg = configparser.ConfigParser()
    setup_cfg.read(ROOT / "setup.cfg")
    assert set(setup_cfg.sections()) == {"pycodestyle", "flake8"}  # no metadata/options: those live in pyproject
    line_length = pyproject["tool"]["ruff"]["line-length"]
    assert line_length == 119
    for section in ("pycodestyle", "flake8"):
        assert int(setup_cfg[section]["max-line-length"]) == line_length


def test_project_metadata():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "hf-simo"
    assert project["requires-python"] == ">=3.10"
    assert "torch>=2.4" in project["dependencies"]
    assert project["scripts"]["hf-simo"] == "hf_simo.cli:main"
    assert "dev" in project["optional-dependencies"]
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("slow:") for m in markers) and any(m.startswith("gpu:") for m in markers)


def test_package_data_is_inside_the_package():
    package = Path(hf_simo.__file__).parent
    assert (package / "py.typed").is_file()
    assert (Path(EVALUATE_MODULE_PATH) / "dense_prediction.py").is_file()


def test_every_subpackage_is_listed_for_setuptools():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    src = ROOT / "src"
    found = {".".join(init.parent.relative_to(src).parts) for init in src.glob("hf_simo/**/__init__.py")} | {
        "hf_simo.model_cards"
    }
    assert found == listed, f"update [tool.setuptools] packages in pyproject.toml: {sorted(found ^ listed)}"


def test_one_version_source():
    import importlib.metadata

    from hf_simo.version import __version__

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert hf_simo.__version__ == __version__ == importlib.metadata.version("hf-simo")
    written = [p for p in (ROOT / "src").rglob("*.py") if f'"{__version__}"' in p.read_text(encoding="utf-8")]
    assert [p.name for p in written] == ["version.py"]


# import name -> distribution, where they differ
DISTRIBUTIONS = {"PIL": "pillow", "yaml": "pyyaml"}
# needed at run time without a direct import: huggingface_hub's ModelCard.from_template renders with jinja2
INDIRECT = {"jinja2"}
EXTRAS = {"evaluate"}  # the optional `evaluate` module (hf_simo/evaluate_metrics), an extra


def test_dependencies_are_what_the_runtime_imports():
    import ast
    import re
    import sys

    imported = set()
    for path in (ROOT / "src" / "hf_simo").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            imported |= {n.split(".")[0] for n in names}
    third_party = {n for n in imported if n not in sys.stdlib_module_names and n not in ("hf_simo", "__future__")}
    needed = {DISTRIBUTIONS.get(n, n).lower() for n in third_party - EXTRAS} | INDIRECT
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[<>=!~ ;\[]", spec, maxsplit=1)[0].lower().replace("-", "_") for spec in project["dependencies"]
    }
    assert declared == {n.replace("-", "_") for n in needed}, f"declared but unused: {declared - needed}"
