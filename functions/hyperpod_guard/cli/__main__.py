"""`python -m hyperpod_guard.cli`: the `hyperpod-guard` command."""

import sys

from . import main

sys.exit(main())
