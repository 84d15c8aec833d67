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
