"""``python -m meganet train [options]``: see :mod:`meganet.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
