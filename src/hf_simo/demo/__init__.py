"""`hf-simo demo`: the whole SIMO pipeline on the embedded benchmark, from nothing (`run_demo`, `DemoArguments`).

Names load on first use (`hf_simo.utils.lazy`).
"""

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports


_EXPORTS = {
    "DemoArguments": "hf_simo.demo.arguments",
    "run_demo": "hf_simo.demo.run",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for IDEs and type checkers; at run time the table above resolves the names
    from hf_simo.demo.arguments import DemoArguments
    from hf_simo.demo.run import run_demo
