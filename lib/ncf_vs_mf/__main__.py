"""``python -m ncf_vs_mf`` is the ``ncf-vs-mf`` command line."""

import sys

from .cli import main

sys.exit(main())
