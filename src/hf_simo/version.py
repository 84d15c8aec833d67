"""hf_simo's version, the one place it is written: `pyproject.toml` reads it (``[tool.setuptools.dynamic]``, a literal
read without importing the package), `hf_simo.__version__`, `hf-simo --version`, model cards and merge records
import it from here (a leaf module: importing it closes no import circle through the package's `__init__`)."""

__version__ = "0.1.0.dev0"
