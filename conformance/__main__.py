"""``python -m conformance``: see :mod:`conformance.cli`."""
import sys

from .cli import main

# Guarded: the workers of --jobs import this module again when they start.
if __name__ == "__main__":
    sys.exit(main())
