"""``python -m dipkit``: the command line of :mod:`dipkit.cli` (same as the ``dipkit`` command)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
