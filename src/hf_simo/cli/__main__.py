"""`python -m hf_simo.cli ...` is `hf-simo ...`."""

import sys

from . import main


sys.exit(main())
