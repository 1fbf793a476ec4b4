"""``python -m netrex_async``: the ``netrex-async`` command line."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
