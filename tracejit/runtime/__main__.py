"""`python -m tracejit.runtime model.tj ...`: the same as `tracejit-run` (see `tracejit.runtime.cli`)."""

import sys

from tracejit.runtime.cli import main

if __name__ == "__main__":
    sys.exit(main())
