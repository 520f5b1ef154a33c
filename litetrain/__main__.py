"""``python -m litetrain`` is the ``litetrain`` command."""

import sys

from .cli import main

sys.exit(main())
