"""`python -m cache_invalidator`: the operators' command line (see docs/OPERATIONS.md)."""

import sys

from cache_invalidator.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
