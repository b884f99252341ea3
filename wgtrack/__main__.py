"""Entry point for ``python -m wgtrack``."""

import sys

from wgtrack.cli import main

sys.exit(main())
