"""`python -m devhost`: scripts/run-local's work (devhost/local_run.py), in the local host's Python 3.13 environment."""

import sys

from devhost.local_run import main

sys.exit(main())
