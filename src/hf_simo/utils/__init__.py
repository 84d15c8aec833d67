"""Small, dependency-light helpers every hf_simo module may use (they import no torch, no transformers model code):

- `hf_simo.utils.lazy`: `lazy_exports`, the PEP 562 table behind every package `__init__`;
- `hf_simo.utils.fields`: `option(...)`, the one dataclass-field helper of argument dataclasses, and the range checks
  their `__post_init__` runs (`require_positive`, ...);
- `hf_simo.utils.logging`: the `hf_simo` logger, the one progress-bar switch and `CommonArguments`.

Import the module you need (`from hf_simo.utils.logging import get_logger`); this package exports nothing itself.
"""
